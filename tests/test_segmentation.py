"""Segmentation building blocks against independent references: Dice and HD95 against set
arithmetic and brute-force surface distances, the Dice+CE loss against its formula in plain
torch, sliding-window inference against the whole image through a pointwise network, patch
sampling (replay, foreground oversampling, crops), patch planning, subject splits, the gamma
step and the U-Net (shapes, deep supervision, medkern layers equal to torch's)."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medkern.models import UNet
from medkern.segmentation import (CaseArrays, DiceCELoss, PatchSampler, deep_supervision_weights, dice_per_class,
                                  gamma_retain_stats, gaussian_importance, hd95_per_class, plan_patch,
                                  prepare_case, sliding_window, split_by_subject, window_starts)


def random_maps(shape, classes, seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, classes, size=shape)
    pred = np.where(rng.random(shape) < 0.7, ref, rng.integers(0, classes, size=shape))
    return pred, ref


@pytest.mark.parametrize("shape,classes", [((9, 11), 2), ((5, 7, 6), 4)])
def test_dice_matches_set_arithmetic(shape, classes):
    pred, ref = random_maps(shape, classes, 0)
    ours = dice_per_class(pred, ref, classes)
    for c in range(1, classes):
        p = {tuple(i) for i in np.argwhere(pred == c)}
        r = {tuple(i) for i in np.argwhere(ref == c)}
        assert ours[c - 1] == pytest.approx(2 * len(p & r) / (len(p) + len(r)), abs=1e-12)


def test_dice_of_a_class_in_neither_map_is_nan_and_in_one_is_zero():
    ref = np.zeros((4, 4), np.uint8)
    ref[0, 0] = 1
    pred = np.zeros_like(ref)
    d = dice_per_class(pred, ref, 3)
    assert d[0] == 0.0 and math.isnan(d[1])


def surface_brute_force(mask, spacing):
    """Voxels of the mask with a face neighbour outside it (outside the array counts as outside),
    as physical coordinates."""
    points = []
    for idx in np.argwhere(mask):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            nb = idx.copy()
            nb[axis] += step
            if nb[axis] < 0 or nb[axis] >= mask.shape[axis] or not mask[tuple(nb)]:
                points.append(idx * np.asarray(spacing))
                break
    return np.array(points)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 1.3)])
def test_hd95_matches_brute_force_surface_distances(spacing):
    rng = np.random.default_rng(1)
    ref = np.zeros((8, 9, 10), np.int64)
    pred = np.zeros_like(ref)
    ref[2:6, 1:7, 3:9] = 1
    pred[3:7, 2:8, 2:7] = 1
    pred[rng.random(ref.shape) < 0.03] = 1
    a, b = surface_brute_force(pred == 1, spacing), surface_brute_force(ref == 1, spacing)
    dists = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    expected = np.percentile(np.concatenate([dists.min(1), dists.min(0)]), 95)
    assert hd95_per_class(pred, ref, 2, spacing)[0] == pytest.approx(expected, rel=1e-9)
    assert math.isnan(hd95_per_class(np.zeros_like(ref), ref, 2, spacing)[0])


def test_metric_errors_name_the_argument():
    with pytest.raises(ValueError, match="'pred': shape"):
        dice_per_class(np.zeros((3, 3), int), np.zeros((3, 4), int), 2)
    with pytest.raises(TypeError, match="'pred' must hold integer"):
        dice_per_class(np.zeros((3, 3)), np.zeros((3, 3), int), 2)
    with pytest.raises(ValueError, match="'pred' is empty"):
        dice_per_class(np.zeros((0, 3), int), np.zeros((0, 3), int), 2)
    with pytest.raises(ValueError, match="'spacing' needs 2"):
        hd95_per_class(np.ones((3, 3), int), np.ones((3, 3), int), 2, spacing=(1.0, 1.0, 1.0))


def test_dice_ce_loss_matches_its_formula():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (3, 5, 6, 7))
    loss = DiceCELoss(4)(logits, target)
    p = logits.softmax(1)
    dice = []
    for c in range(1, 4):
        g = (target == c).double()
        dice.append((2 * (p[:, c] * g).sum() + 1e-5) / (p[:, c].sum() + g.sum() + 1e-5))
    expected = F.cross_entropy(logits, target) + 1 - torch.stack(dice).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-10)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_deep_supervision_levels_are_weighted_and_downsampled():
    torch.manual_seed(1)
    target = torch.randint(0, 3, (2, 8, 8))
    full, half = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)
    w = deep_supervision_weights(3)
    assert w == pytest.approx([2 / 3, 1 / 3, 0.0])
    loss = DiceCELoss(3)([full, half, torch.randn(2, 3, 2, 2)], target)
    expected = w[0] * DiceCELoss(3)(full, target) + w[1] * DiceCELoss(3)(half, target[:, ::2, ::2])
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="'logits' has 2 channels"):
        DiceCELoss(3)(torch.randn(2, 2, 4, 4), target[:, :4, :4])
    with pytest.raises(ValueError, match="'target': shape"):
        DiceCELoss(3)(full, target[:, :4])


@pytest.mark.parametrize("shape,patch,mirror", [((13, 17, 11), (8, 8, 8), False), ((5, 9, 6), (8, 8, 8), True),
                                                ((30, 21), (16, 8), True)])
def test_sliding_window_of_a_pointwise_network_equals_the_whole_image(shape, patch, mirror):
    torch.manual_seed(2)
    conv = (torch.nn.Conv3d if len(shape) == 3 else torch.nn.Conv2d)(2, 3, 1)
    image = torch.randn(2, *shape)
    out = sliding_window(conv, image, patch, num_classes=3, mirror=mirror, batch_size=3)
    with torch.no_grad():
        expected = conv(image[None])[0]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_window_starts_and_gaussian_weights():
    for size, patch in [(10, 4), (40, 40), (57, 16), (3, 8)]:
        starts = window_starts(size, patch, 0.5)
        assert starts[0] == 0 and (starts[-1] + patch == size or size <= patch)
        assert all(b - a <= patch // 2 for a, b in zip(starts, starts[1:]))
    w = gaussian_importance((7, 9))
    assert w.max() == 1.0 and w.min() > 0 and torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1))
    assert w[3, 4] == 1.0


def test_sliding_window_errors():
    conv = torch.nn.Conv2d(1, 2, 1)
    with pytest.raises(ValueError, match="'image': expected"):
        sliding_window(conv, torch.randn(8, 8), (4, 4))
    with pytest.raises(ValueError, match="'overlap'"):
        sliding_window(conv, torch.randn(1, 8, 8), (4, 4), overlap=1.0)
    with pytest.raises(ValueError, match="num_classes=3"):
        sliding_window(conv, torch.randn(1, 8, 8), (4, 4), num_classes=3)
    with pytest.raises(ValueError, match="'image' is empty"):
        sliding_window(conv, torch.randn(1, 0, 8), (4, 4))


def make_cases(count=3, shape=(12, 14, 10), seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(count):
        label = np.zeros(shape, np.uint8)
        label[4:6, 5:8, 3:5] = 1 + (k % 2)
        cases.append(prepare_case(f"c{k}", rng.normal(size=shape) * 50 + 100, label, (1.0, 1.0, 1.0), 3))
    return cases


def test_prepare_case_zscores_and_samples_foreground():
    case = make_cases(1)[0]
    assert case.image.shape == (1, 12, 14, 10) and case.image.dtype == np.float32
    assert abs(case.image.mean()) < 1e-5 and abs(case.image.std() - 1) < 1e-4
    assert len(case.foreground[0]) == 2 * 3 * 2 and len(case.foreground[1]) == 0
    assert all(case.label[tuple(i)] == 1 for i in case.foreground[0])
    with pytest.raises(ValueError, match="label holds class 5"):
        prepare_case("bad", np.zeros((4, 4)), np.full((4, 4), 5), (1.0, 1.0), 3)
    with pytest.raises(ValueError, match="label shape"):
        prepare_case("bad", np.zeros((4, 4)), np.zeros((4, 5)), (1.0, 1.0), 3)


def test_patch_sampler_replays_and_oversamples_foreground():
    cases = make_cases()
    sampler = PatchSampler(cases, (8, 8, 8), foreground_fraction=1.0, seed=3)
    a = sampler.draw(2, 17)
    b = sampler.draw(2, 17)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(sampler.draw(3, 17)[0], a[0])
    images, labels = sampler.batch(1, 0, 20)
    assert images.shape == (20, 1, 8, 8, 8) and labels.shape == (20, 8, 8, 8)
    assert all(labels[k].any() for k in range(20))
    background = PatchSampler(cases, (8, 8, 8), foreground_fraction=0.0, seed=3).batch(1, 0, 40)[1]
    assert sum(bool(lab.any()) for lab in background) < 40


def test_patch_crops_match_slicing_and_pad_outside():
    case = CaseArrays("x", np.arange(6 * 7 * 8, dtype=np.float32).reshape(1, 6, 7, 8),
                      (np.arange(6 * 7 * 8) % 3).astype(np.uint8).reshape(6, 7, 8), (1.0,) * 3, [])
    sampler = PatchSampler([case], (4, 4, 4), foreground_fraction=0.0)
    for index in range(30):
        image, label = sampler.draw(0, index)
        # locate the patch by its first in-bounds value and compare with plain slicing
        inside = image[0] > 0
        if not inside.any() or (image[0] == 0).any():
            continue
        z, y, x = np.unravel_index(int(image[0, 0, 0, 0]), (6, 7, 8))
        assert np.array_equal(image[0], case.image[0, z:z + 4, y:y + 4, x:x + 4])
        assert np.array_equal(label, case.label[z:z + 4, y:y + 4, x:x + 4])
    small = CaseArrays("s", np.ones((1, 2, 3, 2), np.float32), np.ones((2, 3, 2), np.uint8), (1.0,) * 3, [])
    image, label = PatchSampler([small], (4, 4, 4)).draw(0, 0)
    assert image.sum() == 12 and label.sum() == 12


def test_plan_patch_rounds_the_median_up_to_the_divisor():
    shapes = [(31, 40, 24), (36, 50, 35), (43, 59, 47)]
    assert plan_patch(shapes, (8, 8, 8)) == (40, 56, 40)
    assert plan_patch([(135, 200)] * 3, (16, 16)) == (144, 208)
    assert plan_patch([(135, 200)], (16, 16), limit=(100, 500)) == (96, 208)
    with pytest.raises(ValueError, match="'shapes' is empty"):
        plan_patch([], (8,))


def test_split_by_subject_keeps_subjects_together():
    subjects = [f"s{k // 2}" for k in range(40)] + ["solo"]
    train, val = split_by_subject(subjects, 0.2, seed=4)
    assert sorted(train + val) == list(range(41))
    assert not {subjects[i] for i in train} & {subjects[i] for i in val}
    assert 7 <= len(val) <= 10
    assert split_by_subject(subjects, 0.2, seed=4) == (train, val)
    assert split_by_subject(["a", "a"], 0.5, 0) == ([0, 1], [])
    with pytest.raises(ValueError, match="'val_fraction'"):
        split_by_subject(subjects, 1.0, 0)


def test_gamma_keeps_each_samples_range_and_replays():
    torch.manual_seed(5)
    x = torch.randn(6, 1, 5, 5)
    idx = torch.arange(100, 106)
    y = gamma_retain_stats(x, idx, seed=1, p=1.0)
    torch.testing.assert_close(y.flatten(1).min(1).values, x.flatten(1).min(1).values)
    torch.testing.assert_close(y.flatten(1).max(1).values, x.flatten(1).max(1).values)
    assert not torch.allclose(x, y)
    torch.testing.assert_close(gamma_retain_stats(x, idx, seed=1, p=1.0), y)
    assert torch.equal(gamma_retain_stats(x, idx, seed=1, p=0.0), x)


@pytest.mark.parametrize("dims,size", [(2, (16, 24)), (3, (8, 16, 8))])
def test_unet_shapes_and_deep_supervision(dims, size):
    net = UNet(dims, 2, 3, features=(4, 8, 16), deep_supervision=True)
    x = torch.randn(2, 2, *size)
    outs = net(x)
    assert [tuple(o.shape[2:]) for o in outs] == [size, tuple(s // 2 for s in size)]
    net.eval()
    assert net(x).shape == (2, 3, *size)
    with pytest.raises(ValueError, match="not a multiple of"):
        net(torch.randn(1, 2, *(s + 1 for s in size)))
    with pytest.raises(ValueError, match="expected"):
        net(torch.randn(2, *size))


def test_unet_on_medkern_layers_equals_its_torch_twin():
    torch.manual_seed(6)
    ours = UNet(3, 1, 3, features=(4, 8, 16))
    twin = UNet(3, 1, 3, features=(4, 8, 16), layers="torch")
    assert list(ours.state_dict()) == list(twin.state_dict())
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(2, 1, 8, 12, 8)
    torch.testing.assert_close(ours(x), twin(x), rtol=1e-4, atol=1e-5)


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'spatial_dims'"):
        UNet(4, 1, 2)
    with pytest.raises(ValueError, match="'features'"):
        UNet(3, 1, 2, features=(8,))
    with pytest.raises(ValueError, match="'norm'"):
        UNet(3, 1, 2, norm="layer")
    with pytest.raises(ValueError, match="'act'"):
        UNet(3, 1, 2, act="gelu")
    with pytest.raises(ValueError, match="'strides' needs 3"):
        UNet(3, 1, 2, strides=(2, 2))
    for norm in ("batch", "group"):
        assert UNet(2, 1, 2, features=(6, 12), norm=norm, act="relu")(torch.randn(2, 1, 8, 8)).shape == (2, 2, 8, 8)


def test_remaining_argument_checks_name_the_argument(tmp_path):
    from medkern.segmentation import SegmentationConfig, open_segmentation_data, train_segmentation
    from medkern.segmentation.evaluate import evaluate_label_maps
    from medkern.segmentation.predict import collect_inputs

    cases = make_cases(1)
    with pytest.raises(ValueError, match="'cases' is empty"):
        PatchSampler([], (4, 4, 4))
    with pytest.raises(ValueError, match="'foreground_fraction'"):
        PatchSampler(cases, (4, 4, 4), foreground_fraction=1.5)
    with pytest.raises(ValueError, match="'num_classes' must be >= 2"):
        DiceCELoss(1)
    with pytest.raises(ValueError, match="'batch_size'"):
        sliding_window(torch.nn.Conv2d(1, 2, 1), torch.randn(1, 8, 8), (4, 4), batch_size=0)
    with pytest.raises(ValueError, match="'in_channels' and 'num_classes'"):
        UNet(3, 0, 2)
    with pytest.raises(ValueError, match="'strides': each entry"):
        UNet(3, 1, 2, features=(4, 8), strides=[(2, 2)])
    for bad, match in [(dict(epochs=0), "'epochs'"), (dict(batch_size=0), "'batch_size'"),
                       (dict(augment="heavy"), "'augment'")]:
        with pytest.raises(ValueError, match=match):
            train_segmentation(SegmentationConfig(data=str(tmp_path), **bad))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        open_segmentation_data(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .nii"):
        collect_inputs([tmp_path / "empty"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a .nii"):
        collect_inputs([tmp_path / "notes.txt"])
    # a readable folder whose only case is bad: nothing left to train on
    (tmp_path / "f" / "images").mkdir(parents=True)
    (tmp_path / "f" / "labels.csv").write_text("image,mask\nimages/a.png,masks/a.png\n")
    with pytest.raises(ValueError, match="no readable case"):
        open_segmentation_data(tmp_path / "f")
    with pytest.raises(ValueError, match="no prediction in"):
        evaluate_label_maps(tmp_path / "empty", tmp_path / "f")


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_augmentation_mirrors_each_axis_on_its_own_draw(spatial_dims):
    """Every combination of mirrored axes occurs in training (not only all-or-none), so mirrored
    test-time augmentation sees nothing new; the image and its label move together."""
    from medkern.segmentation.trainer import augmentation_pipeline
    import medkern.transforms as T

    pipeline = augmentation_pipeline(spatial_dims, seed=3)
    flips = [t for t in pipeline.transforms if isinstance(t, T.RandomFlip)]
    assert sorted(tuple(t.axes) for t in flips) == [(a,) for a in range(-spatial_dims, 0)]
    # one Pipeline of the flips alone: which axes each index mirrors, read from the output itself
    only_flips = T.Pipeline(flips, seed=3)
    shape = (5, 6, 7)[-spatial_dims:]
    x = torch.arange(float(np.prod(shape))).reshape(1, 1, *shape)
    seen = set()
    for i in range(64):
        out, lab = only_flips(x.clone(), indices=[i], label=x.clone().long())
        mirrored = next(axes for axes in ([()] + [c for r in range(1, spatial_dims + 1)
                                                  for c in itertools.combinations(range(2, 2 + spatial_dims), r)])
                        if torch.equal(out, x.flip(axes) if axes else x))
        assert torch.equal(lab.float(), out)
        seen.add(mirrored)
    assert len(seen) == 2 ** spatial_dims


class _RampAlongH(torch.nn.Module):
    """Output = input x a ramp along H: unchanged by mirroring W, changed by mirroring H."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        ramp = torch.arange(x.shape[-2], dtype=x.dtype).view(-1, 1) + 1.0
        return torch.cat([x * ramp * self.scale, -x * ramp], dim=1)


def test_sliding_window_mirrors_only_the_axes_asked():
    x = torch.rand(1, 6, 10, 12) + 0.1
    plain = sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2)
    # mirroring W alone leaves this model's output as it was; mirroring H as well does not
    assert torch.allclose(sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2, mirror=(-1,)), plain, atol=1e-5)
    assert torch.allclose(sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2, mirror=(2,)), plain, atol=1e-5)
    assert not torch.allclose(sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2, mirror=(-2, -1)), plain,
                              atol=1e-3)
    assert not torch.allclose(sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2, mirror=True), plain,
                              atol=1e-3)
    with pytest.raises(ValueError, match="'mirror'"):
        sliding_window(_RampAlongH(), x, (6, 8, 8), num_classes=2, mirror=(3,))


def test_sliding_window_records_no_graph_and_keeps_the_models_mode():
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    conv.train()
    out = sliding_window(conv, torch.rand(1, 6, 7, 8), (4, 4, 4), num_classes=2)
    assert not out.requires_grad and out.grad_fn is None
    assert conv.training
