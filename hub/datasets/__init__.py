"""Datasets: import (sources -> layout -> ingest engine), export formats, versions and analysis.

The import engine (:mod:`hub.datasets.sources`, :mod:`hub.datasets.layout`,
:mod:`hub.datasets.ingest`) touches only the filesystem; the hub stores its result in SQLite.
:mod:`hub.datasets.export` writes VOC, COCO and YOLO archives back out.
"""
