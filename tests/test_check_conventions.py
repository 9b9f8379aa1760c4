"""Conventions inferred: a layout left out is found from what the code returns and reported
as a convention (the argument to pass), not as a bug; the check is re-run with it."""
import numpy as np

from experiments import check
from scratch import spec as S
from students import conv as SC
from students import layers as SL


class ChannelsLastConv:
    """A Keras-style convolution: x (N, H, W, C), kernel W[kh, kw, in, out], output (N, H', W', out)."""

    def __init__(self, cin=2, filters=3, k=3, seed=0, scale=1.0):
        self.W = np.random.default_rng(seed).normal(0, 0.5, (k, k, cin, filters))
        self.k, self.scale = k, scale

    def forward(self, x):
        win = np.lib.stride_tricks.sliding_window_view(x, (self.k, self.k), axis=(1, 2))  # N H' W' C kh kw
        return self.scale * np.einsum("nhwcij,ijco->nhwo", win, self.W)


class ChannelsFirstConv(ChannelsLastConv):
    """The same convolution in the defaults' layouts (x (N, C, H, W), W[out, in, kh, kw])."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.W = np.ascontiguousarray(self.W.transpose(3, 2, 0, 1))

    def forward(self, x):
        win = np.lib.stride_tricks.sliding_window_view(x, (self.k, self.k), axis=(2, 3))  # N C H' W' kh kw
        return self.scale * np.einsum("nchwij,ocij->nohw", win, self.W)


def test_channels_last_conv_with_no_layouts_is_a_convention_that_then_passes():
    conv = ChannelsLastConv()
    report = check.layer(S.Conv2D(3, 3), input_shape=(2, 6, 6), forward=conv.forward,
                         params={"kernel": lambda: conv.W})
    assert not report.passed  # the declaration is still missing
    assert report.conventions == {"input_layout": "n h w c", "output_layout": "n h w c",
                                  "params['kernel']": "kh kw in out"}
    first = report.diagnoses[0]
    assert first.id == "convention" and len(report.diagnoses) == 1, report
    assert "pass output_layout='n h w c'" in first.text and first.text.endswith("with it, the check passes")
    assert "[convention]" in str(report)
    assert report.to_json()["diagnoses"][0]["id"] == "convention"


def test_flattened_kernel_with_no_layout_is_found():
    conv = SC.LoopConv()
    report = check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                         backward=conv.backward, input_layout="h w", output_layout="h w c",
                         params={"kernel": lambda: conv.K}, grads={"kernel": lambda: conv.dK})
    assert report.conventions == {"params['kernel']": "(kh kw) out"}
    assert [d.id for d in report.diagnoses] == ["convention"]
    assert "params={'kernel': (getter, '(kh kw) out')}" in report.diagnoses[0].text
    assert any("NOT COMPARED" in line and "no layout given" in line for line in str(report).splitlines())


def test_a_real_bug_under_the_inferred_layout_is_named_after_the_convention():
    conv = SC.LoopConv(bug="flipped")
    report = check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                         backward=conv.backward, input_layout="h w", output_layout="h w c",
                         params={"kernel": lambda: conv.K}, grads={"kernel": lambda: conv.dK})
    ids = [d.id for d in report.diagnoses]
    assert ids[0] == "convention" and "kernel-flipped" in ids[1:], report
    assert "with it, the check still fails (output)" in report.diagnoses[0].text


def test_flatten_in_hwc_order_without_an_output_layout():
    flat = SL.FlattenHWC()
    report = check.layer(S.Flatten(), input_shape=(2, 3, 4), forward=flat.forward, backward=flat.backward,
                         input_layout="h w c")
    assert report.conventions == {"output_layout": "(h w c)"}
    assert report.diagnoses[0].id == "convention" and report.diagnoses[0].text.endswith("the check passes")


def test_defaults_that_fit_are_not_claimed_the_bug_is_named():
    conv = ChannelsFirstConv(scale=0.5)
    report = check.layer(S.Conv2D(3, 3), input_shape=(2, 6, 6), forward=conv.forward,
                         params={"kernel": lambda: conv.W})
    assert report.conventions == {}
    assert report.diagnoses[0].id == "scale", report


def test_a_convention_and_a_bug_at_once():
    conv = ChannelsLastConv(scale=0.5)
    report = check.layer(S.Conv2D(3, 3), input_shape=(2, 6, 6), forward=conv.forward,
                         params={"kernel": lambda: conv.W})
    assert report.conventions["output_layout"] == "n h w c"
    assert [d.id for d in report.diagnoses][:2] == ["convention", "scale"], report
    assert "times 0.5" in report.diagnoses[1].text


def test_no_layout_makes_it_match_says_so():
    report = check.layer(S.Conv2D(3, 3), input_shape=(2, 6, 6), forward=lambda x: x[:, :1, 2:, 2:] ** 2)
    assert report.conventions == {}
    assert all(d.id != "convention" for d in report.diagnoses)
    assert any("no plausible layout makes your output match" in n for n in report.notes), report


def test_declared_layouts_are_never_inferred():
    conv = SC.LoopConv(bug="flipped")
    report = check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                         backward=conv.backward, input_layout="h w", output_layout="h w c",
                         params={"kernel": (lambda: conv.K, "(kh kw) out")}, grads={"kernel": lambda: conv.dK})
    assert report.conventions == {} and report.diagnoses[0].id == "kernel-flipped"
