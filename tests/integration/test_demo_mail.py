"""The demo's mail: its people have addresses, the worker writes their notices to a folder,
and the page /mail (on a demo server only) shows them with their links."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from flask import Flask

from rules_service.bootstrap import Container
from rules_service.services.delivery import DeliverySettings, Worker
from rules_service.services.demo import seed_demo
from rules_service.services.demo_mail import give_demo_addresses
from rules_service.services.demo_people import set_demo_passwords
from tests.integration.test_demo import RULESETS
from tests.integration.test_pages_sign_in import sign_in

BASE = "http://127.0.0.1:8080"


def test_a_demo_escalation_arrives_in_the_mail_folder_and_on_the_mail_page(
        app: Flask, container: Container, tmp_path: Path) -> None:
    report = seed_demo(container.uow, container.evaluator, RULESETS, tmp_path / "tokens.json")
    passwords = set_demo_passwords(container.uow, report.tokens, tmp_path / "passwords.json")
    given = give_demo_addresses(container.uow, report.tokens)
    assert given["controller"] == "controller@demo.example"
    assert "demo-automation" not in given
    with container.uow() as uow:
        assert uow.subscriptions.contacts()["cfo"] == "cfo@demo.example"

    client = app.test_client()
    decided = client.post("/v1/rulesets/expense-approval/evaluate", json={
        "input": {"amount": 1800, "category": "hardware", "has_receipt": True}},
        headers={"Authorization": f"Bearer {report.tokens['demo-automation']}"})
    escalation = decided.get_json()["escalation"]["id"]
    mail_dir = tmp_path / "mail"
    worker = Worker(container.uow, DeliverySettings(digest_s=0, base_url=BASE,
                                                    mail_dir=str(mail_dir)),
                    clock=container.clock)
    for _ in range(10):
        if not worker.run_once().busy:
            break
    written = b"".join(p.read_bytes() for p in mail_dir.glob("*.eml"))
    assert b"controller@demo.example" in written

    assert sign_in(client, "controller", passwords["controller"]).status_code == 303
    assert client.get("/mail").status_code == 404  # not a demo server
    container.settings = dataclasses.replace(container.settings, mail_dir=str(mail_dir))
    page = client.get("/mail").get_data(as_text=True)  # the controller's own mail
    assert "to controller@demo.example" in page and "to cfo@demo.example" not in page
    assert 'href="/mail"' in page  # in the navigation
    assert "an expense-approval decision needs the approver" in page
    assert f"{BASE}/escalations#esc-{escalation}" in page
    assert "over-manager-limit" in page
    everyone = client.get("/mail?to=all").get_data(as_text=True)
    assert "to cfo@demo.example" in everyone
