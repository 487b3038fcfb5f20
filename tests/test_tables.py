"""A chapter table as the book shows it: floats rounded per column, the CSV exact."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fetal_lib.tables import MISSING, column_decimals, styled


def test_decimals_give_the_largest_value_four_significant_digits() -> None:
    assert column_decimals([174.0, 173.08, 176.035]) == 1
    assert column_decimals([0.3, 0.8]) == 4
    assert column_decimals([2.413009, 9.852]) == 3
    assert column_decimals([12345.6]) == 0
    assert column_decimals([np.nan, 0.0]) == 0
    assert column_decimals([1e-9]) == 6  # capped


def test_styled_rounds_each_float_column_and_keeps_the_rest() -> None:
    df = pd.DataFrame({"part": ["train", "val"], "images": [533, 111], "HC median (mm)": [174.0, 173.08],
                       "dice": [0.97553402, math.nan]})
    html = styled(df).to_html()
    for text in ("174.0", "173.1", "0.9755", MISSING, "533", "train"):
        assert f">{text}<" in html, text
    assert "174.000000" not in html and "0.975534" not in html
    assert ">0<" not in html  # index hidden
    assert ">0<" in styled(df, index=True).to_html()


def test_collapsed_puts_the_rounded_table_in_a_closed_box_with_its_line() -> None:
    import pandas as pd

    from fetal_lib.tables import collapsed

    html = collapsed(pd.DataFrame({"class": ["a<b", "c"], "F1": [0.812345, 0.5]}), "Per-class F1 <planes>").data
    assert html.startswith("<details><summary>Per-class F1 &lt;planes&gt;</summary>") and html.rstrip().endswith("</details>")
    assert "<details open" not in html and "0.8123" in html and "0.812345" not in html
    assert "a&lt;b" in html  # text cells are escaped
