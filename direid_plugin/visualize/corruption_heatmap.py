"""The corruption benchmark's heatmap: one row per model, one column per corruption, colour = how
many mAP points the model loses under that corruption (clean mAP minus the mean over the five
severities), with the value written in each cell; the last column is the mean over corruptions."""
import textwrap

from matplotlib.figure import Figure

from direid_plugin.files import write_atomic

DPI = 100


def save_drop_heatmap(path, drops, corruptions, title):
    """``drops[model][corruption]``: mAP drop in points. Writes a PNG at ``path`` and returns it."""
    models = list(drops)
    columns = list(corruptions) + ["mean"]
    values = [[drops[m][c] for c in corruptions] + [sum(drops[m][c] for c in corruptions) / len(corruptions)]
              for m in models]
    width = max(6.0, 0.62 * len(columns) + 2.6)  # inches
    figure = Figure(figsize=(width, 0.55 * len(models) + 2.4), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    peak = max(1.0, max(abs(v) for row in values for v in row))
    image = axes.imshow(values, cmap="Reds", vmin=min(0.0, min(v for row in values for v in row)), vmax=peak,
                        aspect="auto")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            axes.text(j, i, f"{round(value)}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.6 * peak else "black")
    axes.set_xticks(range(len(columns)), [c.replace("_", " ") for c in columns], rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(models)), models, fontsize=8)
    axes.axvline(len(corruptions) - 0.5, color="black", linewidth=1)
    figure.colorbar(image, ax=axes, label="mAP drop (points)", shrink=0.8)
    axes.set_title("\n".join(textwrap.wrap(title, int(width * 11))), fontsize=9)
    return write_atomic(path, lambda f: figure.savefig(f, format="png"))
