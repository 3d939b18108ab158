"""``grefcoco``: gRefCOCO (generalised referring expressions) from its JSON files.

The release's layout (as ReLA's ``G_REFER`` reads it)::

    FOLDER/grefs(unc).json     refs: ref_id, image_id, ann_id (a list; [-1]: no target),
                               no_target, sentences [{sent, raw, ...}], split, category_id
    FOLDER/instances.json      COCO: images {id, file_name, height, width},
                               annotations {id, image_id, segmentation, bbox, iscrowd, category_id},
                               categories {id, name}
    FOLDER/images/train2014/   the COCO train2014 images (or FOLDER/train2014/, FOLDER/images/,
                               or beside the JSON files)

``FOLDER`` may also be the folder above ``grefcoco/`` (ReLA's ``datasets/``, with
``images/train2014`` beside it). Splits: ``train``, ``val``, ``testA``, ``testB`` (default
``val``). One :class:`Example` per (ref, sentence); its ground truth is the union of the listed
objects' masks, each drawn exactly as COCO does, crowd regions left out (as ReLA does), or
empty when the expression has no target. Its tag ``target`` is ``none``, ``one`` or
``several``. Scored by :data:`bench.data.protocols.GRES` (gIoU, cIoU, N-acc, T-acc).

Both files are read incrementally (``ijson``), never as one object tree: what is kept is the
split's refs (ids and sentences) and, per object they name, its mask as compressed RLE, a few
hundred bytes an expression.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import Example, parse_bbox, sentence_problem
from bench.data.files import FileImage
from bench.data.masks import CocoMask, coco_rle
from bench.data.protocols import GRES, NO_TARGET, TARGET_TAG
from bench.data_errors import DatasetError

REFS = "grefs(unc).json"
INSTANCES = "instances.json"
SPLITS = ("train", "val", "testA", "testB")
IMAGE_DIRS = ("images/train2014", "train2014", "images", "grefcoco/images/train2014", "grefcoco", ".")


def annotation_dir(path: Path) -> Path | None:
    """The folder holding both JSON files: ``path`` or ``path/grefcoco`` (``None``: neither)."""
    for folder in (path, path / "grefcoco"):
        if (folder / REFS).is_file() and (folder / INSTANCES).is_file():
            return folder
    return None


class GrefcocoAdapter(DatasetAdapter):
    """gRefCOCO (see the module docstring)."""

    name = "grefcoco"
    description = "gRefCOCO: expressions with one, several or no target (grefs(unc).json + instances.json)"
    naming = (
        f"a folder holding {REFS} and {INSTANCES} (or grefcoco/ with them), the COCO images in "
        "images/train2014/; splits train, val, testA, testB"
    )
    default_split = "val"
    protocol = GRES

    def detects(self, path: Path) -> bool:
        return path.is_dir() and annotation_dir(path) is not None

    def open(self, source: str, request: DataRequest) -> DataSource:
        return GrefcocoSource(self, source, request)


@dataclass(frozen=True)
class _Ref:
    ref_id: str
    image_id: int
    ann_ids: tuple[int, ...]
    no_target: bool
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class _Image:
    file_name: str
    size: tuple[int, int]  # (height, width), as instances.json says


@dataclass(frozen=True)
class _Object:
    rle: dict[str, Any] | None  # compressed RLE at the image's size; None: cannot be drawn
    problem: str | None
    bbox: Any
    crowd: bool
    category: str


def _items(path: Path, prefix: str) -> Iterator[Any]:
    import ijson

    with path.open("rb") as fh:
        yield from ijson.items(fh, prefix, use_float=True)


class GrefcocoSource(DataSource):
    """The split's refs, grouped by image in order of first appearance."""

    def __init__(self, adapter: DatasetAdapter, source: str, request: DataRequest):
        path = Path(source).expanduser()
        folder = annotation_dir(path) if path.is_dir() else None
        if folder is None:
            raise DatasetError(f"{source}: no {REFS} and {INSTANCES} in this folder or in grefcoco/ under it")
        self.root = path
        self.split = adapter.split_of(request) or "val"
        files = [folder / REFS, folder / INSTANCES]
        try:
            self.by_image, splits = self._read_refs(files[0])
            if not self.by_image:
                raise DatasetError(
                    f"{files[0]}: no ref in split {self.split!r}; its splits are {', '.join(sorted(splits))}"
                )
            self.images, self.objects = self._read_instances(files[1])
        except DatasetError:
            raise
        except Exception as exc:  # ijson and bad shapes raise many types for a broken file
            raise DatasetError(
                f"{source}: cannot read the gRefCOCO files ({type(exc).__name__}: {exc})"
            ) from None
        self.image_dir = next((d for d in IMAGE_DIRS if (path / d).is_dir()), ".")
        super().__init__(adapter, source, request, total_images=len(self.by_image), files=files)

    def _read_refs(self, path: Path) -> tuple[dict[int, list[_Ref]], set[str]]:
        by_image: dict[int, list[_Ref]] = {}
        splits: set[str] = set()
        for ref in _items(path, "item"):
            splits.add(str(ref.get("split")))
            if ref.get("split") != self.split:
                continue
            ann = ref.get("ann_id")
            ann_ids = tuple(int(a) for a in (ann if isinstance(ann, list) else [ann]))
            sentences = tuple(
                str(s.get("sent") or s.get("raw") or "") if isinstance(s, Mapping) else str(s)
                for s in ref.get("sentences") or []
            )
            item = _Ref(
                str(ref["ref_id"]), int(ref["image_id"]), ann_ids, bool(ref.get("no_target")), sentences
            )
            by_image.setdefault(item.image_id, []).append(item)
        return by_image, splits

    def _read_instances(self, path: Path) -> tuple[dict[int, _Image], dict[int, _Object]]:
        wanted_anns = {a for refs in self.by_image.values() for r in refs for a in r.ann_ids if a >= 0}
        images = {
            int(img["id"]): _Image(str(img["file_name"]), (int(img["height"]), int(img["width"])))
            for img in _items(path, "images.item")
            if int(img["id"]) in self.by_image
        }
        names = {int(c["id"]): str(c.get("name", "")) for c in _items(path, "categories.item")}
        objects: dict[int, _Object] = {}
        for ann in _items(path, "annotations.item"):
            if int(ann["id"]) not in wanted_anns:
                continue
            image = images.get(int(ann["image_id"]))
            rle, problem = None, None
            if image is None:
                problem = f"the image of object {ann['id']} is not in {INSTANCES}"
            else:
                try:  # compressed now: a few hundred bytes instead of the polygon's floats
                    rle = coco_rle(ann["segmentation"], *image.size)
                except DatasetError as exc:
                    problem = f"object {ann['id']}: {exc}"
            objects[int(ann["id"])] = _Object(
                rle,
                problem,
                ann.get("bbox"),
                bool(ann.get("iscrowd")),
                names.get(int(ann.get("category_id", -1)), ""),
            )
        return images, objects

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        for position, (image_id, refs) in enumerate(self.by_image.items()):
            if wanted is None or position in wanted:
                yield position, [ex for ref in refs for ex in self._ref_examples(image_id, ref)]

    def _target(self, ref: _Ref) -> tuple[CocoMask | None, str, str, Any, str | None]:
        """``(mask, target tag, category, bbox, problem)`` of a ref."""
        image = self.images.get(ref.image_id)
        if image is None:
            return None, NO_TARGET, "", None, f"image {ref.image_id} is not in {INSTANCES}"
        size = image.size
        if ref.ann_ids == (-1,) or (ref.no_target and not ref.ann_ids):
            return CocoMask((), size), NO_TARGET, "", None, None
        if -1 in ref.ann_ids or ref.no_target:
            return (
                None,
                NO_TARGET,
                "",
                None,
                f"ref {ref.ref_id} is marked no-target but lists objects {ref.ann_ids}",
            )
        found = [self.objects.get(a) for a in ref.ann_ids]
        missing = [a for a, o in zip(ref.ann_ids, found, strict=True) if o is None]
        if missing:
            return None, "one", "", None, f"object(s) {missing} of ref {ref.ref_id} are not in {INSTANCES}"
        objects = [o for o in found if o is not None and not o.crowd]  # ReLA leaves crowd regions out
        problem = next((o.problem for o in objects if o.problem), None)
        if not objects or problem:
            return None, "one", "", None, problem or f"every object of ref {ref.ref_id} is a crowd region"
        tag = "one" if len(objects) == 1 else "several"
        category = "+".join(dict.fromkeys(o.category for o in objects))
        bbox = objects[0].bbox if len(objects) == 1 else None
        return CocoMask(tuple(o.rle for o in objects), size), tag, category, bbox, None

    def _ref_examples(self, image_id: int, ref: _Ref) -> list[Example]:
        if not ref.sentences:
            self.drop("refs_without_sentences")
        mask, tag, category, bbox, problem = self._target(ref)
        image = self.images.get(image_id)
        file_name = image.file_name if image is not None else ""
        image_ref = FileImage(
            f"{self.image_dir}/{file_name}", self.root, f"image {image_id}", self.request.allow_outside_paths
        )
        return [
            Example(
                example_id=f"{image_id}:{ref.ref_id}:{index}",
                image_id=str(image_id),
                sample_id=ref.ref_id,
                sentence=sentence,
                sentence_index=index,
                category=category,
                bbox_xywh=parse_bbox(bbox),
                source=self.source,
                image_ref=image_ref,
                mask_ref=mask,
                error=problem or sentence_problem(sentence),
                file_name=file_name,
                tags={TARGET_TAG: tag},
            )
            for index, sentence in enumerate(ref.sentences)
        ]
