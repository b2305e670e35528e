"""N-way K-shot tasks (metaloop/tasks/omniglot.py): every example is a real, distinct drawing of its class."""

from __future__ import annotations

import pytest
import torch

import metaloop as ml

CHARACTERS, DRAWINGS = 6, 5


@pytest.fixture
def images() -> torch.Tensor:
    """Random 0/1 images: no two drawings alike and no drawing equal to a rotation of another."""
    return torch.randint(0, 2, (CHARACTERS, DRAWINGS, 8, 8), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


def find(images, image):
    """(character, drawing, rotation) of ``image`` among all rotations of ``images``."""
    hits = [(c, d, r) for c in range(CHARACTERS) for d in range(DRAWINGS) for r in range(4)
            if torch.equal(torch.rot90(images[c, d], r, (-2, -1)), image)]
    assert len(hits) == 1
    return hits[0]


@pytest.mark.parametrize("rotations,distinct", [(True, False), (False, False), (True, True), (False, True)])
def test_examples_are_distinct_drawings_of_their_labelled_class(images, rotations, distinct):
    dist = ml.FewShotImages(images, ways=3, rotations=rotations, distinct_characters=distinct)
    batch = dist.sample(4, support=2, query=2, generator=torch.Generator().manual_seed(1))
    assert batch.support_x.shape == (4, 6, 1, 8, 8) and batch.query_x.shape == (4, 6, 1, 8, 8)
    assert batch.support_x.dtype == torch.float32 and batch.support_y.dtype == torch.int64
    assert batch.support_y[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert batch.info["classes"].shape == (4, 3)
    for t in range(4):
        classes = batch.info["classes"][t]
        assert len(set(classes.tolist())) == 3
        seen = set()
        for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
            for i in range(x.shape[1]):
                c, d, r = find(images, x[t, i, 0].to(torch.uint8))
                assert r * CHARACTERS + c == classes[y[t, i]]
                assert (c, d, r) not in seen  # two rotations of a character are two classes
                seen.add((c, d, r))
        if not rotations:
            assert (classes < CHARACTERS).all()


def test_rotations_make_four_classes_per_character(images):
    dist = ml.FewShotImages(images, ways=5)
    assert dist.num_classes == 4 * CHARACTERS
    classes = dist.sample(200, 1, 1, generator=torch.Generator().manual_seed(0)).info["classes"]
    assert set(classes.flatten().tolist()) == set(range(4 * CHARACTERS))


def test_distinct_characters_rotate_each_class_on_its_own(images):
    """MAML's code's tasks: no two classes of one character, every rotation drawn for every character."""
    dist = ml.FewShotImages(images, ways=CHARACTERS, distinct_characters=True)
    classes = dist.sample(300, 1, 1, generator=torch.Generator().manual_seed(0)).info["classes"]
    characters = classes % CHARACTERS
    assert (characters.sort(1).values == torch.arange(CHARACTERS)).all()  # all 6 characters, once each
    assert set(classes.flatten().tolist()) == set(range(4 * CHARACTERS))
    with pytest.raises(ValueError, match="ways"):
        ml.FewShotImages(images, ways=CHARACTERS + 1, distinct_characters=True)


def test_upright_distinct_characters_draw_the_former_upright_tasks(images):
    """Upright evaluation tasks stay the draws they were before rotated evaluation existed."""
    a = ml.FewShotImages(images, ways=4, rotations=False).sample(5, 1, 2, generator=torch.Generator().manual_seed(3))
    b = ml.FewShotImages(images, ways=4, rotations=False, distinct_characters=True).sample(
        5, 1, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_same_generator_same_tasks(images):
    dist = ml.FewShotImages(images, ways=4)
    a = dist.sample(3, 1, 2, generator=torch.Generator().manual_seed(5))
    b = dist.sample(3, 1, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_bad_requests_rejected(images):
    with pytest.raises(ValueError, match="ways"):
        ml.FewShotImages(images, ways=CHARACTERS + 1, rotations=False)
    with pytest.raises(ValueError, match="drawings"):
        ml.FewShotImages(images, ways=2).sample(1, support=3, query=3)
    with pytest.raises(ValueError, match="uint8"):
        ml.FewShotImages(images.float(), ways=2)
