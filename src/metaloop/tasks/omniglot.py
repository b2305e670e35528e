"""N-way K-shot image classification (Vinyals et al. 2016; Finn et al. 2017, §5.2) over character images.

A task picks N classes, then K support and Q query drawings of each, all distinct. With
``rotations`` every character seen at 0°, 90°, 180° and 270° is a class of its own (Santoro et al.
2016; MAML), so 1200 training characters give 4800 classes, and two rotations of one character may
meet in a task as two classes (as in Reptile's code). With ``distinct_characters`` a task's classes are
distinct characters, each at its own random multiple of 90° (MAML's code, training and test alike: its
test tasks are the 423 test characters "plus rotations", as Snell et al. 2017 put it). A whole
meta-batch is drawn with a few tensor ops (random keys + ``argsort``, one gather, four masked
``rot90``), never a loop over images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from metaloop.tasks.batch import TaskBatch


@dataclass(frozen=True)
class FewShotImages:
    """Tasks over ``images``: ``(characters, drawings, H, W)`` uint8 with ink = 1 (e.g. an Omniglot split).

    ``sample`` returns ``support_x: (tasks, ways * support, 1, H, W)`` float32 in {0, 1},
    ``support_y: (tasks, ways * support)`` int64 labels 0..ways-1 (class-major order), the query set
    likewise, and ``info["classes"]: (tasks, ways)``, the class behind each label
    (``rotation * characters + character``).
    """

    images: Tensor
    ways: int = 5
    rotations: bool = True
    distinct_characters: bool = False  # with rotations: one random rotation per class, never two of a character

    def __post_init__(self):
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be (characters, drawings, H, W) uint8, got {tuple(self.images.shape)} "
                             f"{self.images.dtype}")
        if self.rotations and self.images.shape[2] != self.images.shape[3]:
            raise ValueError("rotations by 90° need square images")
        limit = self.images.shape[0] if self.distinct_characters else self.num_classes
        if not 1 <= self.ways <= limit:
            raise ValueError(f"ways must be in 1..{limit} (the classes available), got {self.ways}")

    @property
    def num_classes(self) -> int:
        return self.images.shape[0] * (4 if self.rotations else 1)

    def sample(self, tasks: int, support: int = 1, query: int = 15,
               generator: torch.Generator | None = None) -> TaskBatch:
        """``tasks`` tasks of ``self.ways`` classes with ``support`` + ``query`` drawings per class."""
        characters, drawings, h, w = self.images.shape
        per_class = support + query
        if per_class > drawings:
            raise ValueError(f"support + query = {per_class} exceeds the {drawings} drawings per character")
        # Distinct classes per task, then distinct drawings per class: the first entries of random orders.
        if self.distinct_characters:
            # upright, these are the draws of the plain upright sampler below (tested)
            classes = torch.rand(tasks, characters, generator=generator).argsort(1)[:, :self.ways]
            if self.rotations:
                classes = classes + characters * torch.randint(0, 4, (tasks, self.ways), generator=generator)
        else:
            classes = torch.rand(tasks, self.num_classes, generator=generator).argsort(1)[:, :self.ways]
        draws = torch.rand(tasks, self.ways, drawings, generator=generator).argsort(2)[..., :per_class]
        character, rotation = classes % characters, classes // characters
        x = self.images[character.unsqueeze(-1), draws]  # (tasks, ways, per_class, H, W)
        if self.rotations:
            for r in range(1, 4):
                mask = rotation == r
                x[mask] = torch.rot90(x[mask], r, (-2, -1))
        x = x.unsqueeze(3).float()  # (tasks, ways, per_class, 1, H, W)
        labels = torch.arange(self.ways).view(1, self.ways, 1).expand(tasks, self.ways, per_class)
        split = (lambda t, a, b: t[:, :, a:b].reshape(tasks, self.ways * (b - a), *t.shape[3:]))
        return TaskBatch(split(x, 0, support), split(labels, 0, support),
                         split(x, support, per_class), split(labels, support, per_class),
                         {"classes": classes})
