"""Paired ("aligned") data: the joint transform, AlignedPairs, fashion_edges and aligned_folder."""

from __future__ import annotations

import pickle
import time

import pytest
import torch
from torchvision.io import write_png
from torchvision.transforms import v2

import unpaired
from unpaired import DataError
from unpaired.data.pairs import AlignedPairs, TensorPairSource, UnalignedPairs
from unpaired.data.preprocess import image_transform, paired_transform
from unpaired_plugins.datasets.aligned import AlignedFolder
from unpaired_plugins.datasets.edges import FashionEdges, canny_edges, interleave
from unpaired_plugins.datasets.fashion import load_split

from conftest import raises


def _random_images(n: int, channels: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# paired_transform


def test_plain_v2_transforms_only_the_first_tensor():
    """Why PairedTransform wraps its inputs: v2 leaves a second plain tensor untouched."""
    img = _random_images(1, 1, 10, 12)[0]
    out_a, out_b = v2.RandomCrop(6)(img, img.clone())
    assert out_a.shape == (1, 6, 6) and out_b.shape == (1, 10, 12)


@pytest.mark.parametrize("channels_b", [1, 3])
def test_paired_transform_same_crop_and_flip(channels_b):
    img = _random_images(1, 1, 20, 24, seed=1)[0]
    other = img.expand(channels_b, -1, -1).clone()  # a copy, or the grey image as RGB
    t = paired_transform(16, 12, flip=True, train=True)
    crops, flips = set(), set()
    for s in range(40):
        torch.manual_seed(s)
        a, b = t(img, other)
        assert type(a) is torch.Tensor and type(b) is torch.Tensor  # plain tensors, not tv_tensors
        assert a.shape == (1, 12, 12) and b.shape == (channels_b, 12, 12) and a.dtype == b.dtype == torch.float32
        assert -1 <= a.min() and a.max() <= 1
        for c in range(channels_b):
            assert torch.equal(a[0], b[c])
        # recover the crop and flip drawn by the same seed with the single-image transform
        torch.manual_seed(s)
        assert torch.equal(a, image_transform(16, 12, flip=True, train=True)(img))
        resized = v2.functional.resize(img, 16, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
        resized = v2.Normalize([0.5], [0.5])(v2.ToDtype(torch.float32, scale=True)(resized))  # 16 x 19
        hits = [(y, x, f) for f in (False, True) for y in range(resized.shape[1] - 11) for x in range(resized.shape[2] - 11)
                if torch.equal((resized[0].flip(-1) if f else resized[0])[y : y + 12, x : x + 12], a[0])]
        assert hits, "the output is a crop (maybe flipped) of the resized image"
        crops.add(hits[0][:2])
        flips.add(hits[0][2])
    assert len(crops) > 5 and flips == {False, True}  # the draws do vary


def test_paired_transform_test_time_is_deterministic_centre_crop():
    a_img, b_img = _random_images(1, 3, 20, 30, seed=2)[0], _random_images(1, 1, 20, 30, seed=3)[0]
    t = paired_transform(16, 12, flip=True, train=False)
    a, b = t(a_img, b_img)
    assert torch.equal(a, image_transform(16, 12, True, False)(a_img))
    assert torch.equal(b, image_transform(16, 12, True, False)(b_img))
    a2, b2 = t(a_img, b_img)
    assert torch.equal(a, a2) and torch.equal(b, b2)


def test_paired_transform_rejects_different_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        paired_transform(8, 8, True, True)(_random_images(1, 1, 10, 10)[0], _random_images(1, 1, 10, 12)[0])


# --------------------------------------------------------------------------------------------
# AlignedPairs


def _pairs(seed=0, n=6):
    imgs = _random_images(n, 1, 20, 20, seed=4)
    names = [f"p{i}.png" for i in range(n)]
    return AlignedPairs(TensorPairSource(imgs, imgs.clone(), names, 1, 3), n, paired_transform(20, 14, True, True), seed=seed)


def test_aligned_pairs_items_and_determinism():
    pairs = _pairs(seed=3)
    assert len(pairs) == 6
    item = pairs[2]
    assert item["name_A"] == item["name_B"] == "p2.png"
    assert item["real_A"].shape == (1, 14, 14) and item["real_B"].shape == (3, 14, 14)
    for c in range(3):
        assert torch.equal(item["real_A"][0], item["real_B"][c])  # one crop, one flip for both

    torch.manual_seed(123)
    before = torch.rand(())
    again = _pairs(seed=3)[2]  # a fresh object, the same (seed, epoch, index)
    assert torch.equal(again["real_A"], item["real_A"]) and torch.equal(again["real_B"], item["real_B"])
    torch.manual_seed(123)
    assert torch.equal(torch.rand(()), before)  # the global generator is left alone

    pairs.set_epoch(1)
    changed = [i for i in range(6) if not torch.equal(pairs[i]["real_A"], _pairs(seed=3)[i]["real_A"])]
    assert changed  # another epoch, other crops/flips
    pairs.set_epoch(0)
    assert torch.equal(pairs[2]["real_A"], item["real_A"])
    other_seed = _pairs(seed=4)
    assert any(not torch.equal(other_seed[i]["real_A"], pairs[i]["real_A"]) for i in range(6))


def test_aligned_pairs_picklable_and_keys_match_unaligned():
    pairs = _pairs()
    clone = pickle.loads(pickle.dumps(pairs))
    assert torch.equal(clone[1]["real_B"], pairs[1]["real_B"])
    domain = [(torch.zeros(1, 4, 4), "x.png")]
    assert set(pairs[0]) == set(UnalignedPairs(domain, domain)[0])


def test_aligned_pairs_errors():
    with raises(DataError, "no-pairs"):
        AlignedPairs(TensorPairSource(torch.zeros(0, 1, 4, 4, dtype=torch.uint8), torch.zeros(0, 1, 4, 4, dtype=torch.uint8), []), 0,
                     paired_transform(4, 4, False, False))
    bad = AlignedPairs(lambda i: (torch.zeros(1, 4, 4, dtype=torch.uint8), torch.zeros(1, 4, 6, dtype=torch.uint8), "a.png", "b.png"), 1,
                       paired_transform(4, 4, False, False))
    with raises(DataError, "pair-sizes", key="a.png", says=("b.png",)):
        bad[0]
    with pytest.raises(IndexError):
        _pairs()[6]


# --------------------------------------------------------------------------------------------
# fashion_edges


@pytest.fixture(scope="module")
def edges_aligned():
    return FashionEdges()


@pytest.fixture(scope="module")
def edges_unaligned():
    return FashionEdges(aligned=False)


def test_canny_edges_binary_and_matches_kornia():
    import kornia

    photos = torch.from_numpy(load_split("embedded", "test", 9)[:50])[:, None]
    edges = canny_edges(photos, 0.2, 0.4)
    assert edges.dtype == torch.uint8 and edges.shape == photos.shape
    assert set(edges.unique().tolist()) == {0, 255}
    _, ref = kornia.filters.canny(photos.float() / 255, 0.2, 0.4)  # kornia's own hysteresis
    assert torch.equal(edges, (ref * 255).to(torch.uint8))
    assert torch.equal(canny_edges(photos, 0.2, 0.4), edges)  # deterministic


def test_interleave():
    a, b = torch.arange(3)[:, None].numpy(), (10 + torch.arange(5))[:, None].numpy()
    assert interleave([a, b])[:, 0].tolist() == [0, 10, 1, 11, 2, 12, 13, 14]


def test_fashion_edges_aligned(edges_aligned):
    data = edges_aligned
    assert data.aligned is True and data.channels == 1
    t0 = time.perf_counter()
    edges, photos, names = data.split_images("train")
    assert time.perf_counter() - t0 < 10  # loose: the shared test machine; about 1 s here
    assert edges.shape == photos.shape == (2000, 1, 28, 28) and len(names) == 2000
    # interleaved classes: train image 0 is sneaker 0, image 1 ankle boot 0
    assert torch.equal(photos[0, 0], torch.from_numpy(load_split("embedded", "train", 7)[0]))
    assert torch.equal(photos[1, 0], torch.from_numpy(load_split("embedded", "train", 9)[0]))
    assert set(edges.unique().tolist()) == {0, 255}
    on = (edges > 0).flatten(1).sum(1)
    assert (on > 20).float().mean() > 0.99 and on.float().median() < 28 * 28 / 4  # outlines: not empty, not filled
    assert not torch.equal(edges, photos)

    pairs = data.pairs("train", seed=0)
    assert len(pairs) == 2000
    item = pairs[7]
    assert item["name_A"] == item["name_B"] == "train_00007.png"
    assert item["real_A"].shape == item["real_B"].shape == (1, 32, 32)
    assert len(data.domain("A", "train")) == len(data.domain("B", "train")) == 2000
    assert len(data.pairs("test")) == 400


@pytest.mark.parametrize("aligned", [True, False])
def test_fashion_edges_test_split_is_paired(aligned, edges_aligned, edges_unaligned):
    data = edges_aligned if aligned else edges_unaligned
    dom_a, dom_b = data.domain("A", "test"), data.domain("B", "test")
    assert len(dom_a) == len(dom_b) == 400
    edges, photos, _ = data.split_images("test")
    for i in (0, 1, 57, 399):
        (img_a, name_a), (img_b, name_b) = dom_a[i], dom_b[i]
        assert name_a == name_b == f"test_{i:05d}.png"
        assert img_a.shape == img_b.shape == (1, 32, 32)
        t = image_transform(36, 32, flip=True, train=False)
        assert torch.equal(img_a, t(edges[i])) and torch.equal(img_b, t(photos[i]))
        assert torch.equal(dom_a[i][0], img_a)  # deterministic
    pairs = data.pairs("test", seed=5)
    assert len(pairs) == 400
    item = pairs[57]
    assert torch.equal(item["real_A"], dom_a[57][0]) and torch.equal(item["real_B"], dom_b[57][0])
    assert item["name_A"] == item["name_B"] == dom_a[57][1]


def test_fashion_edges_unaligned_train_halves_disjoint(edges_unaligned):
    data = edges_unaligned
    assert data.aligned is False
    dom_a, dom_b = data.domain("A", "train"), data.domain("B", "train")
    assert len(dom_a) == len(dom_b) == 1000
    names_a = {dom_a.names[i] for i in range(1000)}
    names_b = {dom_b.names[i] for i in range(1000)}
    assert not names_a & names_b and names_a | names_b == {f"train_{k:05d}.png" for k in range(2000)}
    # by content: no photo of domain B has its edges in domain A
    edges, photos, _ = data.split_images("train")
    a_edges = {bytes(e.numpy()) for e in dom_a.images}
    b_photos = dom_b.images
    assert len(a_edges) > 990  # edge maps are (nearly) all distinct, so the check below means something
    assert not any(bytes(e.numpy()) in a_edges for e in canny_edges(b_photos, 0.2, 0.4))
    assert all(any(torch.equal(p, q) for q in photos[1000:1003]) for p in b_photos[:3])
    # both halves hold both classes (the classes are interleaved before the cut)
    sneakers = {bytes(x) for x in load_split("embedded", "train", 7)}
    in_b = sum(bytes(p[0].numpy()) in sneakers for p in b_photos)
    assert 400 < in_b < 600
    # training items are random crops of 36 x 36
    img, name = dom_a[0]
    assert img.shape == (1, 32, 32) and name == "train_00000.png"


def test_fashion_edges_options():
    data = FashionEdges(limit=10, channels=[1, 3], aligned=False)
    assert len(data.domain("A", "train")) == 5 and len(data.domain("B", "train")) == 5
    assert len(data.domain("A", "test")) == 10
    item = data.pairs("train", seed=0)[3]
    assert item["real_A"].shape == (1, 32, 32) and item["real_B"].shape == (3, 32, 32)
    assert torch.equal(item["real_B"][0], item["real_B"][2])
    assert data.domain("B", "test")[0][0].shape == (3, 32, 32)
    with raises(DataError, "unknown-split", key="split"):
        data.domain("A", "val")
    with pytest.raises(ValueError):
        FashionEdges(classes=(7, 10))
    with pytest.raises(ValueError):
        FashionEdges(low_threshold=0.5, high_threshold=0.4)
    with pytest.raises(ValueError):
        FashionEdges(channels=2)
    with raises(DataError, "not-embedded"):
        FashionEdges(classes=(1,)).domain("A", "test")


# --------------------------------------------------------------------------------------------
# aligned_folder


def _side_by_side(folder, count, h=16, w=32, a_value=40, b_value=200, channels=3):
    """Files i with A (left) = a_value + i, B (right) = b_value + i; width w (odd: one more column of 255)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = torch.full((channels, h, w), 255, dtype=torch.uint8)
        img[:, :, : w // 2] = a_value + i
        img[:, :, w // 2 : 2 * (w // 2)] = b_value + i
        write_png(img, str(folder / f"pair_{i:02d}.png"))


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_aligned_folder_halves(tmp_path, direction):
    _side_by_side(tmp_path / "train", 3)
    _side_by_side(tmp_path / "test", 2)
    (tmp_path / "test" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "test" / "notes.txt").write_text("x")
    data = AlignedFolder(root=str(tmp_path), direction=direction, load_size=16, crop_size=12)
    assert data.aligned is True
    a_val, b_val = (40, 200) if direction == "AtoB" else (200, 40)

    def value(x):  # back to the uint8 fill value
        return round(float((x.mean() + 1) / 2 * 255))

    pairs = data.pairs("train", seed=0)
    assert len(pairs) == 3
    for i in range(3):
        item = pairs[i]
        assert item["name_A"] == item["name_B"] == f"pair_{i:02d}.png"
        assert item["real_A"].shape == item["real_B"].shape == (3, 12, 12)
        assert value(item["real_A"]) == a_val + i and value(item["real_B"]) == b_val + i
    dom_a, dom_b = data.domain("A", "test"), data.domain("B", "test")
    assert len(dom_a) == len(dom_b) == 2
    assert [dom_a[i][1] for i in range(2)] == [dom_b[i][1] for i in range(2)] == ["pair_00.png", "pair_01.png"]
    assert value(dom_a[1][0]) == a_val + 1 and value(dom_b[1][0]) == b_val + 1


def test_aligned_folder_joint_crop_and_channels(tmp_path):
    # random left half, its copy as the right half: one crop and flip means equal outputs
    g = torch.Generator().manual_seed(0)
    (tmp_path / "train").mkdir()
    for i in range(4):
        half = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8, generator=g)
        write_png(torch.cat([half, half], dim=2), str(tmp_path / "train" / f"{i}.png"))
    data = AlignedFolder(root=str(tmp_path), load_size=20, crop_size=14)
    pairs = data.pairs("train", seed=1)
    for epoch in range(3):
        pairs.set_epoch(epoch)
        for i in range(4):
            item = pairs[i]
            assert torch.equal(item["real_A"], item["real_B"])
    grey_to_rgb = AlignedFolder(root=str(tmp_path), channels=[1, 3], load_size=20, crop_size=14).pairs("train")[0]
    assert grey_to_rgb["real_A"].shape == (1, 14, 14) and grey_to_rgb["real_B"].shape == (3, 14, 14)


def test_aligned_folder_odd_width(tmp_path):
    _side_by_side(tmp_path / "test", 1, h=8, w=17)  # w2 = 8; the 17th column (255) is dropped
    data = AlignedFolder(root=str(tmp_path), load_size=8, crop_size=8, channels=1)
    item = data.pairs("test")[0]
    assert item["real_A"].shape == item["real_B"].shape == (1, 8, 8)
    assert item["real_B"].unique().numel() == 1  # no column of the 255 border


def test_aligned_folder_errors(tmp_path):
    with pytest.raises(DataError) as info:
        AlignedFolder(root=str(tmp_path / "nowhere")).pairs("train")
    assert str(tmp_path / "nowhere" / "train") in str(info.value) and "folder not found" in str(info.value)
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError) as info:
        AlignedFolder(root=str(tmp_path)).domain("A", "test")
    assert str(tmp_path / "test") in str(info.value) and "the folder is empty" in str(info.value)
    (tmp_path / "val").mkdir()
    write_png(torch.zeros(3, 4, 1, dtype=torch.uint8), str(tmp_path / "val" / "thin.png"))
    with raises(DataError, "too-narrow", key=str(tmp_path / "val" / "thin.png")):
        AlignedFolder(root=str(tmp_path), load_size=4, crop_size=4).pairs("val")[0]
    with pytest.raises(ValueError):
        AlignedFolder(root=str(tmp_path), direction="AB")
    for side, width in (("A", 8), ("B", 10)):  # a pair in two folders, of two sizes: both files named
        (tmp_path / f"valpair{side}").mkdir()
        write_png(torch.zeros(3, 8, width, dtype=torch.uint8), str(tmp_path / f"valpair{side}" / "0.png"))
    with raises(DataError, "pair-sizes", key=str(tmp_path / "valpairA" / "0.png"),
                says=(str(tmp_path / "valpairB" / "0.png"), "(8x8)", "(8x10)")):
        AlignedFolder(root=str(tmp_path), layout="folders", load_size=8, crop_size=8).pairs("valpair")[0]


def test_fashion_edges_labels_follow_each_domains_images(edges_unaligned):
    data = edges_unaligned
    test_a, test_b = data.labels("A", "test"), data.labels("B", "test")
    assert torch.equal(test_a, test_b) and test_a[:4].tolist() == [7, 9, 7, 9] and len(test_a) == 400
    train_a, train_b = data.labels("A", "train"), data.labels("B", "train")  # the two disjoint halves
    assert len(train_a) == len(data.domain("A", "train")) == 1000 and len(train_b) == 1000
    assert (train_a == 7).sum() == (train_a == 9).sum() == 500
    limited = unpaired.create("dataset", "fashion_edges", limit=5).labels("A", "test")
    assert limited.tolist() == [7, 9, 7, 9, 7]
