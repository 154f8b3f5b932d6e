"""Loading real torchreid Re-ID weights non-strictly, with a report of what matched."""
import torchreid

from direid_plugin.run import load_weights_report


def test_osnet_msmt17_weights_load_without_the_classifier(osnet_msmt17_weights, capsys):
    model = torchreid.models.build_model("osnet_x0_25", 10, pretrained=False, use_gpu=False)
    changed, unchanged = load_weights_report(model, osnet_msmt17_weights)
    # Every backbone tensor comes from the file; the 10-way classifier (MSMT17 has 1041) does not.
    assert any(k.startswith("conv1.") for k in changed)
    assert "classifier.weight" not in changed and "classifier.weight" in unchanged
    assert all(k.startswith("classifier.") for k in unchanged)
    assert "tensors set" in capsys.readouterr().out
