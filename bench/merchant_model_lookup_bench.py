"""CPU time of classifying one ticket: the shipped model called directly, against
`workflow.classifier_models.classify` (the merchant's active-model lookup, then the model) for a merchant on
the shipped model and for one with its own model (the shipped model packed under another version), on a
temporary SQLite file, the three alternated in every round. Also the CPU time of the first load of a
merchant's packed model.

    .venv/bin/python bench/merchant_model_lookup_bench.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

import classifier
from classifier.candidates import pack_model
from policy import PolicyEngine
from storage.db import Database
from storage.migrate import upgrade
from storage.tables import ClassifierActive, ClassifierModel
from workflow.classifier_models import classify
from workflow.services import WorkflowServices
from workflow.tenancy.merchants import create_merchant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bookbag-bench-"))
    db = Database.from_url(f"sqlite:///{tmp / 'bench.sqlite3'}")
    upgrade(db.engine)
    shipped = classifier.Classifier.load(classifier.default_model_dir())
    services = WorkflowServices(policy=PolicyEngine(), classifier=shipped)
    own = tmp / "model"
    shutil.copytree(classifier.default_model_dir(), own)
    manifest = json.loads((own / "manifest.json").read_text())
    manifest["version"] = "bench-own"
    (own / "manifest.json").write_text(json.dumps(manifest))
    blob = pack_model(own)
    with db.unit_of_work() as session:
        plain = create_merchant(session, name="plain", slug="bench-plain")
        mine = create_merchant(session, name="own", slug="bench-own")
        row = ClassifierModel(
            merchant_id=mine.id,
            number=1,
            status="active",
            model_version="bench-own",
            model=blob,
            model_bytes=len(blob),
        )
        session.add(row)
        session.flush()
        session.add(ClassifierActive(merchant_id=mine.id, model_id=row.id, model_version="bench-own"))
        plain_id, own_id = plain.id, mine.id
    ticket = classifier.TicketInput(
        subject="Where is my order?", body="Order #1001 has not arrived yet, it's been 10 days."
    )
    print(f"load average {os.getloadavg()[0]:.2f}; packed model {len(blob)} bytes")
    started = time.process_time()
    with db.read_only() as session:
        classify(session, services, [(own_id, ticket)])
    print(f"first load of the merchant's model: {time.process_time() - started:.3f} s CPU")
    spent = {"shipped model, direct": 0.0, "classify(), shipped model": 0.0, "classify(), own model": 0.0}
    for _ in range(args.rounds):
        for name in spent:
            with db.read_only() as session:
                session.execute(text("SELECT 1"))  # in ingest the unit of work's connection is open already
                started = time.process_time()
                if name == "shipped model, direct":
                    shipped.predict_batch([ticket])
                else:
                    classify(session, services, [(plain_id if "shipped" in name else own_id, ticket)])
                spent[name] += time.process_time() - started
    for name, seconds in spent.items():
        print(f"{name}: {seconds / args.rounds * 1000:.3f} ms CPU per ticket")
    print(f"load average {os.getloadavg()[0]:.2f}")
    db.dispose()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
