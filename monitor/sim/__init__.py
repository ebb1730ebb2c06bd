"""Simulation, for tests, benchmarks and the demo (off the production path; nothing here is imported by
the pipeline).

- ``phantoms``: synthetic ACDC-like ground-truth masks and MR-like images;
- ``corruptions``, ``segmenters``: graded segmentation failures and the simulated segmenters built from
  them (good, fair, poor, failing);
- ``dataset``: a simulated dataset in the acdc-dev layout with real metrics (``cmr-monitor synth``);
- ``history``, ``seed``: a few weeks of simulated scored history, planned (pure) and written to a
  database (the dashboard's demo data);
- ``deliveries``, ``demo``: the live demo (``cmr-monitor demo``).

Example::

    from monitor.sim import make_patient, SEGMENTERS
    ed, es = make_patient(np.random.default_rng(0))
    mask, what = SEGMENTERS["poor"](ed.labels, np.random.default_rng(1), ed.spacing_mm)
"""

from monitor.sim.corruptions import (
    add_spurious_blobs,
    dilate_structure,
    drop_slices,
    erode_structure,
    perturb_boundaries,
    punch_holes,
    remove_structure,
    swap_labels,
)
from monitor.sim.dataset import METRICS_COLUMNS, DatasetSummary, write_dataset
from monitor.sim.history import HISTORY_CHECKPOINT_HASH, HistoryPlan, plan_history
from monitor.sim.phantoms import (
    Phantom,
    PhantomGeometry,
    make_image,
    make_patient,
    make_phantom,
    render_phantom,
    sample_geometry,
)
from monitor.sim.seed import HistorySummary, seed_history, write_history
from monitor.sim.segmenters import DEFAULT_SEGMENTERS, SEGMENTERS, SimulatedSegmenter

__all__ = [
    "DEFAULT_SEGMENTERS",
    "HISTORY_CHECKPOINT_HASH",
    "METRICS_COLUMNS",
    "SEGMENTERS",
    "DatasetSummary",
    "HistoryPlan",
    "HistorySummary",
    "Phantom",
    "PhantomGeometry",
    "SimulatedSegmenter",
    "add_spurious_blobs",
    "dilate_structure",
    "drop_slices",
    "erode_structure",
    "make_image",
    "make_patient",
    "make_phantom",
    "perturb_boundaries",
    "plan_history",
    "punch_holes",
    "remove_structure",
    "render_phantom",
    "sample_geometry",
    "seed_history",
    "swap_labels",
    "write_dataset",
    "write_history",
]
