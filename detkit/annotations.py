"""In-memory annotation records shared by the readers, writers, hub and executor."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Box:
    """One box in original-image pixels, xyxy (VOC's xmin, ymin, xmax, ymax)."""

    x1: float
    y1: float
    x2: float
    y2: float
    name: str
    difficult: bool = False
    truncated: bool = False
    pose: str = ""
    confidence: float | None = None  # set on predictions
    box_quality: float | None = None  # YMIR extra
    tags: dict[str, str] = field(default_factory=dict)  # YMIR box tags

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


@dataclass
class ImageAnnotation:
    """All boxes of one image plus its image-level fields."""

    filename: str = ""
    width: int = 0
    height: int = 0
    depth: int = 3
    boxes: list[Box] = field(default_factory=list)
    image_quality: float | None = None  # YMIR extra
    tags: dict[str, str] = field(default_factory=dict)  # YMIR image (asset) tags
