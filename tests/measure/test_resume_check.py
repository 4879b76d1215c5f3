"""`sweep`/`tune --resume RUN MODEL` refuse a run started with another model, device or framework
(its points would be mixed under one name); a study's run resumed by its own sweeps is not refused."""

import json

import pytest

from nnscale.errors import UserError
from nnscale.measure.recorder import open_run
from nnscale.store import open_store

STORED = {"model": "test-tiny-mlp", "device": "cpu", "framework": "torch", "batches": [1, 2]}


@pytest.mark.parametrize("kind", ["sweep", "tune"])
@pytest.mark.parametrize("key, other", [("device", "cuda:0"), ("model", "test-tiny-cnn"),
                                        ("framework", "jax")])
def test_resume_with_another_model_device_or_framework_is_refused(tmp_path, kind, key, other):
    with open_store(str(tmp_path / "r.db")) as store:
        store.create_run("r", notes=json.dumps({kind: STORED}))
        with pytest.raises(UserError, match=f"started with {key} {STORED[key]!r}, not {other!r}"):
            open_run(store, kind, dict(STORED, **{key: other}), "r", resume=True)
        # other batches are a resume of the same run
        run_id, name, done = open_run(store, kind, dict(STORED, batches=[4]), "r", resume=True)
        assert (name, done) == ("r", {}) and run_id == store.run("r").id


def test_a_study_run_resumed_by_its_sweeps_is_not_refused(tmp_path):
    with open_store(str(tmp_path / "s.db")) as store:
        store.create_run("s", notes=json.dumps({"study": {"name": "quick", "device": "cpu"}}))
        _, name, _ = open_run(store, "sweep", dict(STORED, device="cpu"), "s", resume=True)
        assert name == "s"
