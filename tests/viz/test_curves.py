"""Training-curve figures: panels follow what the logs hold, and the PNG is written."""

from pixelwise.viz.curves import curves_figure, plot_curves


def _train(steps):
    return [{"type": "train", "step": s, "loss": 1.0 / s, "lr": 0.01} for s in steps]


def test_validation_panel_only_when_a_run_validated():
    without = curves_figure({"a": _train(range(1, 20)), "b": _train(range(20, 40))})
    assert [ax.get_title() for ax in without.axes] == ["training loss", "learning rate"]
    val = [{"type": "val", "step": 10, "mean_iu": 0.25}]
    with_val = curves_figure({"a": _train(range(1, 20)) + val, "b": _train(range(20, 40))})
    titles = [ax.get_title() for ax in with_val.axes]
    assert titles == ["training loss", "learning rate", "validation mean IU (%)"]
    assert list(with_val.axes[2].get_lines()[0].get_ydata()) == [25.0]


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves(_train(range(1, 10)), tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
