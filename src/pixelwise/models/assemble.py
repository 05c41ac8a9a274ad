"""An EDeconvNet assembled from two trained members: an FCN-8s and a DeconvNet, checked to fit.

Used by ``pixelwise ensemble`` (which writes the result as a checkpoint), ``pixelwise predict
--fcn --deconvnet`` and ``pixelwise serve``'s pairs.
"""

from __future__ import annotations

from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.base import SegmentationModel
from pixelwise.models.ensemble import ENSEMBLE_MODES, EDeconvNet
from pixelwise.models.fcn import ATONCE_SCALES
from pixelwise.models.registry import create_model

FCN_MEMBERS = ("fcn8s", "fcn8s_atonce")
"""The model names an EDeconvNet takes as its FCN member."""


def build_edeconvnet(fcn: SegmentationModel, deconvnet: SegmentationModel, *, mode: str = "mean",
                     fcn_source: str = "--fcn", deconvnet_source: str = "--deconvnet") -> EDeconvNet:
    """Return an EDeconvNet (built by ``create_model("edeconvnet")``, so it can be checkpointed)
    holding copies of the two members' weights; raises :class:`PixelwiseError` if they don't fit.
    ``fcn_source`` and ``deconvnet_source`` name the members in those messages."""
    if mode not in ENSEMBLE_MODES:
        raise PixelwiseError(f"unknown ensemble --mode {mode!r}; valid: {', '.join(ENSEMBLE_MODES)}")
    fspec = dict(fcn.pixelwise_spec or {})
    dspec = dict(deconvnet.pixelwise_spec or {})
    _check_members(fcn, deconvnet, fspec, dspec, fcn_source, deconvnet_source)
    fcn_kwargs = _fcn_options(fspec, dspec, fcn_source, deconvnet_source)
    model = create_model("edeconvnet", num_classes=fspec["num_classes"], width=fspec.get("width", 1.0),
                         mode=mode, **fcn_kwargs)
    if dspec.get("caffe_bn"):
        model.deconvnet._use_caffe_bn()  # the authors' BN epsilon; the weights loaded below replace the shifts
    if dspec.get("proposal_pad"):
        model.deconvnet.proposal_pad = dspec["proposal_pad"]
    model.fcn.load_state_dict(fcn.state_dict())
    # deep-supervision scorers (aux_score.*) are training-only: inference never uses them
    model.deconvnet.load_state_dict({k: v for k, v in deconvnet.state_dict().items() if not k.startswith("aux_score.")})
    _copy_card(model, fcn, deconvnet)
    return model.eval()


def _check_members(fcn: SegmentationModel, deconvnet: SegmentationModel, fspec: dict, dspec: dict, fcn_source: str,
                   deconvnet_source: str) -> None:
    """Raise :class:`CheckpointError` unless the members are an FCN-8s and a DeconvNet with the same
    classes, width, input convention, input scale and class names."""
    if fspec.get("name") not in FCN_MEMBERS:
        raise CheckpointError(
            f"{fcn_source}: expected an FCN-8s checkpoint ({', '.join(FCN_MEMBERS)}), got {fspec.get('name')!r}"
        )
    if dspec.get("name") != "deconvnet":
        raise CheckpointError(f"{deconvnet_source}: expected a DeconvNet checkpoint, got {dspec.get('name')!r}")
    if fspec["num_classes"] != dspec["num_classes"]:
        raise CheckpointError(
            f"{fcn_source} has {fspec['num_classes']} classes but {deconvnet_source} has {dspec['num_classes']}; "
            "ensemble models trained on the same classes"
        )
    if float(fspec.get("width", 1.0)) != float(dspec.get("width", 1.0)):
        raise CheckpointError(
            f"{fcn_source} has width {fspec.get('width')} but {deconvnet_source} has width {dspec.get('width')}; "
            "an EDeconvNet checkpoint records one width for both members"
        )
    fconv, dconv = fcn.input_convention, deconvnet.input_convention
    if fconv is not None and dconv is not None and fconv != dconv:
        raise CheckpointError(
            f"{fcn_source} expects {fconv.name} input but {deconvnet_source} expects {dconv.name}; "
            "both members must take the same normalised image"
        )
    fscale, dscale = float(fcn.input_scale), float(deconvnet.input_scale)
    if fscale != dscale:
        raise CheckpointError(
            f"{fcn_source} runs at input scale {fscale:g} but {deconvnet_source} at {dscale:g}; "
            "both members must see the same image"
        )
    fnames, dnames = fcn.class_names, deconvnet.class_names
    if fnames and dnames and list(fnames) != list(dnames):
        raise CheckpointError(f"{fcn_source} and {deconvnet_source} have different class names")


def _fcn_options(fspec: dict, dspec: dict, fcn_source: str, deconvnet_source: str) -> dict:
    """Return the ``create_model("edeconvnet", ...)`` options of the members' specs (the FCN's,
    with DeconvNet's proposal size); raises :class:`CheckpointError` when their width floors differ."""
    fcn_kwargs = {k: v for k, v in fspec.items() if k not in ("name", "num_classes", "width")}
    if fspec["name"] == "fcn8s_atonce":
        fcn_kwargs.setdefault("skip_scales", dict(ATONCE_SCALES))
    if "min_channels" in dspec and dspec["min_channels"] != fcn_kwargs.get("min_channels", dspec["min_channels"]):
        raise CheckpointError(
            f"{fcn_source} has min_channels {fcn_kwargs['min_channels']} but {deconvnet_source} has "
            f"{dspec['min_channels']}; an EDeconvNet checkpoint records one width floor for both members"
        )
    if "input_size" in dspec:  # DeconvNet's proposal size (its fc6 kernel follows from it)
        fcn_kwargs["input_size"] = dspec["input_size"]
    return fcn_kwargs


def _copy_card(model: EDeconvNet, fcn: SegmentationModel, deconvnet: SegmentationModel) -> None:
    """Give ``model`` the members' input convention, class names and colours, and input scale."""
    if fcn.input_convention is not None:
        model.input_convention = fcn.input_convention
    fnames, dnames = fcn.class_names, deconvnet.class_names
    model.class_names = list(fnames or dnames) if (fnames or dnames) else None
    model.class_colors = fcn.class_colors or deconvnet.class_colors
    model.input_scale = float(fcn.input_scale)
