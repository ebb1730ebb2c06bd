from __future__ import annotations

import numpy as np
import pytest

from monitor.qc.labels import ACDC, MNMS, Structure, get_label_map


def test_acdc_is_canonical_and_mnms_swaps_lv_rv():
    values = np.array([0, 1, 2, 3], dtype=np.uint8)
    assert ACDC.to_canonical(values).tolist() == [0, 1, 2, 3]
    # M&Ms: 1 LV, 2 MYO, 3 RV -> canonical 3 LV, 2 MYO, 1 RV
    assert MNMS.to_canonical(values).tolist() == [0, 3, 2, 1]
    assert MNMS.from_canonical(MNMS.to_canonical(values)).tolist() == [0, 1, 2, 3]


def test_get_label_map_by_name_and_spec():
    assert get_label_map("ACDC") is ACDC
    custom = get_label_map("LV=5,MYO=6,RV=7")
    assert custom.labels[Structure.LV] == 5
    assert custom.allowed_values == frozenset({0, 5, 6, 7})
    with pytest.raises(ValueError, match="unknown label map"):
        get_label_map("nope")
    with pytest.raises(ValueError, match="distinct"):
        get_label_map("LV=1,MYO=1,RV=2")
