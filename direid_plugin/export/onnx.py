"""ONNX export of the inference graphs; the batch dimension of every input and output is dynamic.

DFEN (stage 2), ``dfen.onnx``: ``image`` (B, 3, H, W) -> ``feature`` (B, D), the feature torchreid's
test ranks with: the eval-mode output, averaged with the mirrored image's when ``test.flip``.

DDGAN (stage 1), three graphs that compose into degradation swaps
``decoder(content_encoder(x_a), degradation_encoder(x_b))``:

* ``ddgan_content_encoder.onnx``: ``image`` -> ``content`` (B, content_dim, H/4, W/4);
* ``ddgan_degradation_encoder.onnx``: ``image`` -> ``code`` (B, code_dim), the real head E_d;
* ``ddgan_decoder.onnx``: ``content``, ``code`` -> ``image`` (normalised like the inputs).

Images are normalised as in training (``data.norm_mean`` / ``data.norm_std``) at a fixed H x W.

The TorchScript-based exporter (``dynamo=False``, deprecated since torch 2.9 but working) is used:
the torch.export-based one also gives parity within 1e-4 here, but needs onnxscript and takes
6-11x longer on these graphs (DFEN at 64x32 with flip, 2 shared CPU cores: 21-38 s against 3.5 s).
"""
import os
import warnings

import torch
import torch.nn as nn

from direid_plugin.evaluation.features import flip_averaged

OPSET = 17
BATCH_AXIS = {0: "batch"}


class DFENFeature(nn.Module):
    """image -> the evaluated test feature (``evaluation.features.flip_averaged``)."""

    def __init__(self, dfen, flip):
        super().__init__()
        self.dfen = dfen
        self.flip = flip

    def forward(self, image):
        return flip_averaged(self.dfen, image, self.flip)


class ContentMap(nn.Module):
    """image -> E_c's content map."""

    def __init__(self, content_encoder):
        super().__init__()
        self.content_encoder = content_encoder

    def forward(self, image):
        return self.content_encoder.content(image)


class RealCode(nn.Module):
    """image -> the real-head degradation code E_d (the head swaps and memory replay use)."""

    def __init__(self, degradation_encoder):
        super().__init__()
        self.degradation_encoder = degradation_encoder

    def forward(self, image):
        return self.degradation_encoder(image, synthetic=False)


def export_graph(module, inputs, path, input_names, output_names):
    """Export ``module`` (put in eval mode) traced on ``inputs`` and check the file; returns ``path``.

    Only the batch axis is dynamic: the exporter's shape inference names the other axes of some
    outputs symbolically (even 'batch' for an image height), so the outputs are declared with the
    static shapes the traced run produced.
    """
    import onnx  # the exporter needs it too; an optional dependency (setup.py extra 'export')

    module.eval()
    outputs = module(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        # Noise here: the exporter is a deliberate choice (module docstring); the flip's Slice just
        # is not constant-folded; InstanceNorm without running statistics normalises with the
        # input's statistics in eval mode too, which the exporter calls "train=True".
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1 can be constant folded")
        warnings.filterwarnings("ignore", message=".*operator 'instance_norm' is set to train=True")
        torch.onnx.export(module, tuple(inputs), path, dynamo=False, opset_version=OPSET,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes={name: BATCH_AXIS for name in (*input_names, *output_names)})
    model = onnx.load(path)
    for declared, tensor in zip(model.graph.output, outputs):
        dims = declared.type.tensor_type.shape.dim
        for axis, size in enumerate(tensor.shape[1:], start=1):
            dims[axis].Clear()
            dims[axis].dim_value = size
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def graph_signature(path):
    """'image [batch, 3, 256, 128] -> feature [batch, 576]': the graph's inputs and outputs."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph

    def describe(values):
        return ", ".join(f"{v.name} {[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]}" for v in values)
    return f"{describe(graph.input)} -> {describe(graph.output)}"


def example_images(height, width, batch=2):
    """The tracing input; its values do not matter, only its shape (batch 2 keeps the batch axis general)."""
    return torch.zeros(batch, 3, height, width)


@torch.no_grad()
def export_dfen(dfen, output_dir, cfg):
    """``{graph name: path}`` of the DFEN feature graph, at ``data.height`` x ``data.width``, flip-averaged
    when ``test.flip``."""
    path = export_graph(DFENFeature(dfen, cfg.test.flip), [example_images(cfg.data.height, cfg.data.width)],
                        os.path.join(output_dir, "dfen.onnx"), ["image"], ["feature"])
    return {"dfen": path}


@torch.no_grad()
def export_ddgan(ddgan, output_dir, cfg):
    """``{graph name: path}`` of the DDGAN content encoder, degradation encoder and decoder graphs, at
    ``data.height`` x ``data.width``."""
    image = example_images(cfg.data.height, cfg.data.width)
    content_map, real_code = ContentMap(ddgan.content_encoder).eval(), RealCode(ddgan.degradation_encoder).eval()
    content, code = content_map(image), real_code(image)
    graphs = {
        "ddgan_content_encoder": (content_map, [image], ["image"], ["content"]),
        "ddgan_degradation_encoder": (real_code, [image], ["image"], ["code"]),
        "ddgan_decoder": (ddgan.decoder, [content, code], ["content", "code"], ["image"]),
    }
    return {name: export_graph(module, inputs, os.path.join(output_dir, f"{name}.onnx"), inputs_names, outputs)
            for name, (module, inputs, inputs_names, outputs) in graphs.items()}
