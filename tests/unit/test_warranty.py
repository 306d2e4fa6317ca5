"""Warranty from purchase history (projections/warranty.py), on views folded in memory."""

from __future__ import annotations

from typing import Any

from domain.identity import event_uuid
from projections import warranty
from projections.customer_view import View, apply, entry_of, new_view, render

CUSTOMER = "7b1c0000-0000-5000-8000-000000000002"


def fact(kind: str, fid: str, at: str, data: dict[str, Any], department: str = "stores",
         source: str = "store-7") -> dict[str, Any]:
    return {"type": kind, "id": fid, "source": source, "customer": {"customer_id": "C-1"},
            "occurred_at": at, "data": data, "department": department, "agent": "S-1",
            "customer_uuid": CUSTOMER, "event_id": str(event_uuid(source, fid))}


def purchase(fid: str, at: str, serial: str | None, months: int | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"product": extra.pop("product", "Router X200"), **extra}
    if serial is not None:
        data["serial"] = serial
    if months is not None:
        data["warranty_months"] = months
    return fact("purchase.recorded", fid, at, data)


def filed(fid: str, at: str, claim_id: str, serial: str, issue: str = "no Wi-Fi") -> dict[str, Any]:
    return fact("warranty.claim_filed", fid, at, {"claim_id": claim_id, "serial": serial, "issue": issue})


def decided(fid: str, at: str, claim_id: str, approved: bool, reason: str = "") -> dict[str, Any]:
    return fact("warranty.claim_decided", fid, at,
                {"claim_id": claim_id, "approved": approved, "reason": reason},
                department="technical_service", source="warranty-svc")


def fold(*facts: dict[str, Any]) -> View:
    view = new_view(CUSTOMER)
    for position, f in enumerate(facts, 1):
        apply(view, f, entry_of(f, position, "2026-06-30T00:00:00+00:00"), None)
    return view


def claims(view: View) -> dict[str, dict[str, Any]]:
    return {c["claim_id"]: c for c in warranty.claim_rows(view)}


def test_a_purchase_without_invoice_is_a_product_with_its_warranty_end_date() -> None:
    view = fold(purchase("p1", "2025-02-10T17:45:00+01:00", "SNR58", store="BCN01", price=379))
    (row,) = warranty.product_rows(view)
    assert row["customer_id"] == CUSTOMER
    assert (row["serial"], row["product"], row["store"]) == ("SNR58", "Router X200", "BCN01")
    assert row["purchased_at"] == "2025-02-10T16:45:00.000000Z"
    assert (row["purchased_on"], row["purchased_local"]) == ("2025-02-10", "2025-02-10T17:45:00+01:00")
    assert (row["warranty_months"], row["warranty_ends"]) == (24, "2027-02-10")
    assert row["invoice"] is None and row["price"] == 379.0
    assert (row["department"], row["agent"], row["purchase_id"]) == ("stores", "S-1", "p1")


def test_the_warranty_runs_from_the_local_purchase_date_and_clips_to_the_months_end() -> None:
    view = fold(purchase("p1", "2024-01-31T23:30:00+01:00", "A", months=1),
                purchase("p2", "2025-01-31T10:00:00+01:00", "B", months=1),
                purchase("p3", "2025-03-15T00:10:00+01:00", "C", months=36),
                purchase("p4", "2025-03-15T10:00:00+01:00", None))
    ends = {r["purchase_id"]: r["warranty_ends"] for r in warranty.product_rows(view)}
    assert ends == {"p1": "2024-02-29", "p2": "2025-02-28", "p3": "2028-03-15", "p4": "2027-03-15"}
    nameless = next(r for r in warranty.product_rows(view) if r["purchase_id"] == "p4")
    assert nameless["serial"] is None and nameless["serial_key"] is None


def test_a_claim_in_warranty_has_no_flags_and_its_decision_sets_the_status() -> None:
    view = fold(purchase("p1", "2025-02-10T17:45:00+01:00", "SNR58"),
                filed("w1", "2026-04-10T11:20:00+02:00", "W-1", "SNR58"),
                decided("d1", "2026-04-17T13:00:00+02:00", "W-1", True, "within warranty"))
    row = claims(view)["W-1"]
    assert row["flags"] == [] and row["in_warranty"] is True
    assert (row["status"], row["approved"], row["reason"]) == ("approved", True, "within warranty")
    assert row["warranty_ends"] == "2027-02-10" and row["product"] == "Router X200"
    assert row["filed_at"] == "2026-04-10T09:20:00.000000Z"
    assert row["decided_at"] == "2026-04-17T11:00:00.000000Z"
    assert (row["filed_department"], row["decided_department"]) == ("stores", "technical_service")
    assert row["issue"] == "no Wi-Fi"


def test_an_open_claim_has_no_decision() -> None:
    view = fold(purchase("p1", "2025-02-10T17:45:00+01:00", "SNR58"),
                filed("w1", "2026-04-10T11:20:00+02:00", "W-1", "SNR58"))
    row = claims(view)["W-1"]
    assert (row["status"], row["approved"], row["decided_at"]) == ("open", None, None)


def test_the_last_covered_day_is_the_end_date_itself() -> None:
    view = fold(purchase("p1", "2024-04-10T10:00:00+02:00", "S"),
                filed("w1", "2026-04-10T23:59:00+02:00", "W-on", "S"),
                filed("w2", "2026-04-11T00:01:00+02:00", "W-after", "S"))
    rows = claims(view)
    assert rows["W-on"]["flags"] == [] and rows["W-on"]["in_warranty"] is True
    assert rows["W-after"]["flags"] == ["out_of_warranty"]
    assert rows["W-after"]["warranty_ends"] == "2026-04-10" and rows["W-after"]["in_warranty"] is False


def test_an_out_of_warranty_claim_is_recorded_and_flagged_with_the_end_date() -> None:
    view = fold(purchase("p1", "2023-03-01T12:00:00+01:00", "TV-9", product="TV Lumo"),
                filed("w1", "2026-05-10T10:00:00+02:00", "W-2", "TV-9", "no picture"),
                decided("d1", "2026-05-12T10:00:00+02:00", "W-2", False, "out of warranty"))
    row = claims(view)["W-2"]
    assert row["flags"] == ["out_of_warranty"] and row["warranty_ends"] == "2025-03-01"
    assert row["product"] == "TV Lumo" and row["status"] == "refused" and row["approved"] is False


def test_a_claim_for_a_serial_the_customer_never_bought_is_flagged_unknown_product() -> None:
    view = fold(purchase("p1", "2025-02-10T17:45:00+01:00", "SNR58"),
                filed("w1", "2026-05-10T10:00:00+02:00", "W-3", "ZZZ-404"))
    row = claims(view)["W-3"]
    assert row["flags"] == ["unknown_product"]
    assert row["warranty_ends"] is None and row["in_warranty"] is None and row["product"] is None
    assert row["status"] == "open" and row["serial"] == "ZZZ-404"


def test_serials_are_compared_by_letters_and_digits_whatever_the_case() -> None:
    view = fold(purchase("p1", "2025-02-10T17:45:00+01:00", "X200-5581-AB"),
                filed("w1", "2026-05-10T10:00:00+02:00", "W-1", " x200-5581-ab "),
                filed("w2", "2026-05-10T10:00:00+02:00", "W-2", "X200 5581AB"),
                filed("w3", "2026-05-10T10:00:00+02:00", "W-3", "X200-5581-AC"))
    rows = claims(view)
    assert rows["W-1"]["flags"] == [] == rows["W-2"]["flags"]
    assert rows["W-3"]["flags"] == ["unknown_product"]
    assert warranty.serial_key(" x200 5581-ab") == "X2005581AB"
    assert warranty.serial_key(" - ") is None and warranty.serial_key(None) is None


def test_a_serial_bought_twice_is_judged_against_the_latest_purchase_before_the_claim() -> None:
    view = fold(purchase("p1", "2020-01-10T10:00:00+01:00", "S", months=12),
                purchase("p2", "2025-06-10T10:00:00+02:00", "S", months=24),
                purchase("p3", "2026-09-01T10:00:00+02:00", "S", months=24),
                filed("w1", "2026-05-10T10:00:00+02:00", "W-1", "S"))
    row = claims(view)["W-1"]
    assert row["flags"] == [] and row["warranty_ends"] == "2027-06-10"
    assert row["purchase_event_id"] == str(event_uuid("store-7", "p2"))


def test_a_claim_filed_before_any_purchase_of_its_serial_is_flagged() -> None:
    view = fold(filed("w1", "2026-05-10T10:00:00+02:00", "W-1", "S"),
                purchase("p1", "2026-05-11T10:00:00+02:00", "S"))
    row = claims(view)["W-1"]
    assert row["flags"] == ["filed_before_purchase"] and row["warranty_ends"] == "2028-05-11"


def test_a_decision_without_its_filing_is_flagged_not_filed_and_the_latest_decision_counts() -> None:
    view = fold(decided("d2", "2026-05-20T10:00:00+02:00", "W-9", True, "on appeal"),
                decided("d1", "2026-05-12T10:00:00+02:00", "W-9", False, "no fault found"))
    row = claims(view)["W-9"]
    assert row["flags"] == ["not_filed"] and row["serial"] is None and row["filed_at"] is None
    assert (row["status"], row["reason"]) == ("approved", "on appeal")


def test_the_customer_view_shows_the_same_judgement() -> None:
    view = fold(purchase("p1", "2023-03-01T12:00:00+01:00", "TV-9"),
                filed("w1", "2026-05-10T10:00:00+02:00", "W-2", "TV-9"),
                filed("w2", "2026-05-10T11:00:00+02:00", "W-3", "ZZZ"),
                decided("d1", "2026-05-12T10:00:00+02:00", "W-2", False, "expired"))
    shown = {c["claim_id"]: c for c in render(view)["warranty_claims"]}
    w2, w3 = shown["W-2"], shown["W-3"]
    assert (w2["status"], w2["product_known"], w2["in_warranty"]) == ("refused", True, False)
    assert w2["warranty_ends"] == "2025-03-01" and w2["flags"] == ["out_of_warranty"]
    assert w2["reason"] == "expired" and w2["decided"]["department"] == "technical_service"
    assert (w3["status"], w3["product_known"], w3["flags"]) == ("open", False, ["unknown_product"])
    assert w3["filed"]["occurred_at"] == "2026-05-10T11:00:00+02:00"
    (product,) = render(view)["products"]
    assert product["warranty_ends"] == "2025-03-01"
