"""Names of apps, partners and postbacks that do not exist: the error suggests the close existing name.

Only commands that add something below a missing name suggest adding it;
commands that change, show or remove a missing name never do.
"""

from __future__ import annotations

import pytest

from tests.config.conftest import last_seq

# (test id, CLI arguments, the whole error line)
CASES = [
    ("partner typo on postback add", ["postback", "add", "shop", "examplnet", "install"],
     "Error: Partner 'examplnet' does not exist for app 'shop'. Did you mean 'examplenet'?"),
    ("partner typo on partner remove", ["partner", "remove", "shop", "jsonad"],
     "Error: Partner 'jsonad' does not exist for app 'shop'. Did you mean 'jsonads'?"),
    ("partner typo on partner set", ["partner", "set", "shop", "examplnet", "--inactive"],
     "Error: Partner 'examplnet' does not exist for app 'shop'. Did you mean 'examplenet'?"),
    ("partner case on partner show", ["partner", "show", "shop", "JSONADS"],
     "Error: Partner 'JSONADS' does not exist for app 'shop'. Did you mean 'jsonads'?"),
    ("partner typo on postback set", ["postback", "set", "shop", "jsonad", "Purchase", "--retries", "1"],
     "Error: Partner 'jsonad' does not exist for app 'shop'. Did you mean 'jsonads'?"),
    ("unknown partner on partner set", ["partner", "set", "shop", "zzz", "--inactive"],
     "Error: Partner 'zzz' does not exist for app 'shop' (existing: examplenet, jsonads)."),
    ("unknown partner on partner remove", ["partner", "remove", "shop", "zzz"],
     "Error: Partner 'zzz' does not exist for app 'shop' (existing: examplenet, jsonads)."),
    ("postback typo on postback set", ["postback", "set", "shop", "jsonads", "Purchse", "--retries", "1"],
     "Error: Postback 'Purchse' does not exist for partner 'jsonads' of app 'shop'. Did you mean 'Purchase'?"),
    ("postback typo on postback remove", ["postback", "remove", "shop", "examplenet", "Level up"],
     "Error: Postback 'Level up' does not exist for partner 'examplenet' of app 'shop'. Did you mean 'Level Up'?"),
    ("unknown postback on postback remove", ["postback", "remove", "shop", "examplenet", "Purchase"],
     "Error: Postback 'Purchase' does not exist for partner 'examplenet' of app 'shop' "
     "(existing: install, Level Up)."),
    ("app typo on app set", ["app", "set", "shp", "--name", "X"],
     "Error: App 'shp' does not exist. Did you mean 'shop'?"),
    ("app typo on partner add", ["partner", "add", "gmae", "jsonads"],
     "Error: App 'gmae' does not exist. Did you mean 'game'?"),
    ("app typo on partner remove", ["partner", "remove", "gam", "localnet"],
     "Error: App 'gam' does not exist. Did you mean 'game'?"),
    ("unknown app on partner list", ["partner", "list", "zzz"],
     "Error: App 'zzz' does not exist (existing: game, shop)."),
]


@pytest.mark.parametrize(("args", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_missing_name_error(configured, args, expected):
    before = last_seq(configured)

    result = configured.cli(*args, expect=1)

    assert result.output.strip() == expected
    assert last_seq(configured) == before


@pytest.mark.parametrize(("args", "hint"), [
    (["partner", "add", "zzz", "jsonads"], "Add it with `postbackd app add`."),
    (["postback", "add", "shop", "zzz", "install"], "Add it with `postbackd partner add shop zzz`."),
])
def test_add_below_missing_name_suggests_adding(configured, args, hint):
    result = configured.cli(*args, expect=1)

    assert "(existing: " in result.output
    assert result.output.strip().endswith(hint)
