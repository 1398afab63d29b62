"""Label sets ship with the package, in the official head orders."""
import pytest

from uniformer.data.labels import get_labels, label_sets


@pytest.mark.parametrize("name, n, first", [
    ("imagenet-1k", 1000, "tench"),
    ("kinetics-400", 400, "riding a bike"),  # official order, not alphabetical (docs/official.md §5)
    ("kinetics-600", 600, "feeding fish"),
    ("something-something-v1", 174, "Approaching something with your camera"),
    ("something-something-v2", 174, "Approaching [something] with your camera"),
    ("ade20k-150", 150, "wall"),
    ("coco-80", 80, "person"),
    ("coco-keypoints-17", 17, "nose"),
])
def test_label_sets(name, n, first):
    labels = get_labels(name)
    assert len(labels) == n and labels[0] == first
    if name != "imagenet-1k":  # ImageNet has two 'crane's and two 'maillot's
        assert len(set(labels)) == n


def test_kinetics_400_is_in_the_official_order():
    labels = get_labels("kinetics-400")
    assert labels[1] == "marching" and labels[341] == "abseiling"
    assert list(labels) != sorted(labels)


def test_unknown_label_set():
    with pytest.raises(KeyError, match="known"):
        get_labels("nope")
    assert "kinetics-400" in label_sets()
