"""Stage 6: operator tariffs (admin CLI), on sites or EVSEs, served (Sender) and pushed to eMSPs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from .harness import add_site, connected, connector, inventory
from .test_ocpi_push import FAST, wait_for
from .test_ocpi_sessions import ENERGY_TARIFF

pytestmark = pytest.mark.usefixtures("socket_enabled")

TWO_EVSES = inventory(
    {"id": "CP1", "evses": [{"evse_id": 1, "connectors": [connector()]}, {"evse_id": 2, "connectors": [connector()]}]}
)


def write(tmp_path: Path, name: str, value: Any) -> str:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return str(path)


def tariff_ids(msp: Any) -> dict[str, list[str]]:
    return {e["uid"]: e["connectors"][0].get("tariff_ids", []) for e in msp.state.locations["s1"]["evses"]}


async def test_tariffs_lifecycle(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await add_site(cpo, data=TWO_EVSES)
        made = await cpo.ok("set-tariff", "--id", "T1", "--file", write(tmp_path, "t1.json", {**ENERGY_TARIFF, "x": 1}))
        assert made["id"] == "T1"
        assert (made["country_code"], made["party_id"]) == ("FR", "CAR")
        assert "x" not in made
        await wait_for(lambda: "T1" in msp.state.tariffs)
        assert msp.state.tariffs["T1"] == made
        _, body, headers = await msp.module("GET", "tariffs")
        assert body["data"] == [made]
        assert headers["X-Total-Count"] == "1"
        # On the whole site, then a different one on EVSE 2.
        await cpo.ok("assign-tariff", "T1", "--site", "s1")
        await wait_for(lambda: tariff_ids(msp) == {"s1-CP1-1": ["T1"], "s1-CP1-2": ["T1"]})
        await cpo.ok("set-tariff", "--id", "T2", "--file", write(tmp_path, "t2.json", ENERGY_TARIFF))
        await cpo.ok("assign-tariff", "T2", "--site", "s1", "--evse", "S1-cp1-2")
        await wait_for(lambda: tariff_ids(msp) == {"s1-CP1-1": ["T1"], "s1-CP1-2": ["T2"]})
        assert [t["id"] for t in await cpo.ok("list-tariffs")] == ["T1", "T2"]
        await cpo.ok("unassign-tariff", "T2", "--site", "s1", "--evse", "s1-CP1-2")
        await wait_for(lambda: tariff_ids(msp) == {"s1-CP1-1": ["T1"], "s1-CP1-2": ["T1"]})
        # Replaced: pushed again. Deleted: DELETE pushed, gone from the Location.
        await cpo.ok(
            "set-tariff",
            "--id",
            "T1",
            "--file",
            write(tmp_path, "t1b.json", {**ENERGY_TARIFF, "tariff_alt_url": "https://x"}),
        )
        await wait_for(lambda: msp.state.tariffs["T1"].get("tariff_alt_url") == "https://x")
        assert await cpo.ok("delete-tariff", "T1") == {"tariff_id": "T1", "deleted": True}
        await wait_for(lambda: "T1" not in msp.state.tariffs)
        await wait_for(lambda: tariff_ids(msp) == {"s1-CP1-1": [], "s1-CP1-2": []})
        _, body, _ = await msp.module("GET", "tariffs")
        assert [t["id"] for t in body["data"]] == ["T2"]
        _, body, _ = await msp.module("GET", "tariffs", "/?date_to=2000-01-01T00:00:00Z")
        assert body["data"] == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["set-tariff", "--id", "T1", "--file", "{missing}"], "No such file"),
        (["set-tariff", "--id", "T1", "--file", "{bad.json}"], "not JSON"),
        (["set-tariff", "--id", "T1", "--file", "{no-elements.json}"], "elements: missing"),
        (["set-tariff", "--id", "T1", "--file", "{limits.json}"], "min_price: greater than max_price"),
        (["set-tariff", "--id", "x" * 40, "--file", "{ok.json}"], "id: longer than 36"),
        (["set-tariff", "--id", "T1", "--file", "{ok.json}", "--party", "BE*ABC"], "no party BE*ABC"),
        (["delete-tariff", "T9"], "no tariff T9"),
        (["assign-tariff", "T9", "--site", "s1"], "no tariff T9"),
        (["assign-tariff", "T0", "--site", "nope"], "no site nope"),
        (["assign-tariff", "T0", "--site", "s1", "--evse", "nope"], "no EVSE nope at s1"),
        (["unassign-tariff", "T0", "--site", "s1"], "nothing to change"),
    ],
)
async def test_tariff_command_errors(tmp_path: Path, argv: list[str], problem: str) -> None:
    files = {
        "{missing}": str(tmp_path / "missing.json"),
        "{bad.json}": write(tmp_path, "bad.json", "{nope"),
        "{no-elements.json}": write(tmp_path, "no-elements.json", {"currency": "EUR"}),
        "{limits.json}": write(
            tmp_path,
            "limits.json",
            {**ENERGY_TARIFF, "min_price": {"excl_vat": 5}, "max_price": {"excl_vat": 1}},
        ),
        "{ok.json}": write(tmp_path, "ok.json", ENERGY_TARIFF),
    }
    async with connected(tmp_path) as (cpo, _):
        await add_site(cpo)
        await cpo.ok("set-tariff", "--id", "T0", "--file", files["{ok.json}"])
        code, _, err = await cpo.cli(*[files.get(arg, arg) for arg in argv])
        assert code == 1
        assert problem in err


async def test_tariffs_and_sites_of_other_parties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with connected(tmp_path) as (cpo, _):
        await add_site(cpo)
        await cpo.ok("create-party", "--country-code", "BE", "--party-id", "CFX", "--name", "Cariflex BE")
        ok = write(tmp_path, "ok.json", ENERGY_TARIFF)
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(ENERGY_TARIFF)))
        await cpo.ok("set-tariff", "--id", "TBE", "--file", "-", "--party", "BE*CFX")
        _, _, err = await cpo.cli("set-tariff", "--id", "TBE", "--file", ok, "--party", "FR*CAR")
        assert "belongs to BE*CFX" in err
        _, _, err = await cpo.cli("assign-tariff", "TBE", "--site", "s1")
        assert "different parties" in err
        _, _, err = await cpo.cli("set-tariff", "--id", "T", "--file", ok)
        assert "several parties: give --party" in err
