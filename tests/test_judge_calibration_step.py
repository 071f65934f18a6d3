"""The judge_calibration step and what the report says when a judge failed its calibration (issue 17)."""

import numpy as np
import xarray as xr

import emostats as es
from emostats.report.content import build_document
from emostats.report.model import Paragraph


def _study_with_calibration(passed, auc=0.716, spearman=0.373):
    """A synthetic study whose /evaluations is what extract.evaluations writes when the gate fails/passes."""
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=1200, n_probes=6, n_features=60, k=4, hidden=16, n_conversations=3,
                               turn_length=(100, 300), seed=11)
    emotions = np.asarray(tree["tokens"]["probe"].values)
    labels = np.r_[np.ones(5, np.int8), np.zeros(7, np.int8)]
    attrs = {"judge_model": "tiny-judge.gguf", "calibration_threshold": 0.75}
    if not passed:
        attrs["no_ratings_reason"] = f"the judge failed the calibration check: AUC {auc:.3f} < 0.75"
    ev = xr.Dataset(
        {"calibration_label": ("calibration_text", labels),
         "calibration_auc": ((), auc), "calibration_spearman": ((), spearman),
         "calibration_passed": ((), np.int8(passed)),
         "mentions": (("rated_feature", "emotion"), np.zeros((0, emotions.size), np.int8))},
        coords={"calibration_text": np.arange(labels.size), "emotion": emotions,
                "rated_feature": np.zeros(0, np.int64)}, attrs=attrs)
    tree["evaluations"] = xr.DataTree(ev)
    return tree


def test_step_copies_the_calibration_and_mentions_skip_with_its_reason():
    tree = _study_with_calibration(passed=False)
    res = es.run(tree, steps=["judge_calibration", "mentions"], progress=False, quiet=True)
    ca = res["judge_calibration"]
    assert float(ca["calibration_auc"]) == 0.716
    assert float(ca["calibration_spearman"]) == 0.373
    assert int(ca["calibration_passed"]) == 0
    assert (int(ca["n_emotional"]), int(ca["n_neutral"])) == (5, 7)
    assert "mentions" not in res.children
    assert "AUC 0.716 < 0.75" in res.attrs["skipped_mentions"]


def _paragraphs(doc, label):
    sec = next(s for top in doc.sections for s in top.walk() if s.label == label)
    return " ".join(b.text for b in sec.blocks if isinstance(b, Paragraph))


def test_report_states_the_failed_calibration_numbers():
    res = es.run(_study_with_calibration(passed=False), steps=["judge_calibration"], progress=False, quiet=True)
    text = _paragraphs(build_document(res, {}), "sec-ratings")
    assert "AUC 0.716" in text and "5 emotional and 7 neutral" in text
    assert "failed, so the study holds no ratings" in text


def test_report_of_a_passed_calibration_does_not_say_it_failed():
    res = es.run(_study_with_calibration(passed=True, auc=0.91, spearman=0.7), steps=["judge_calibration"],
                 progress=False, quiet=True)
    text = _paragraphs(build_document(res, {}), "sec-ratings")
    assert "AUC 0.91" in text and "failed" not in text


def test_study_without_evaluations_skips_the_step():
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=600, n_probes=4, n_features=40, k=4, hidden=12, n_conversations=2,
                               seed=2)
    if "evaluations" in tree.children:
        del tree["evaluations"]
    res = es.run(tree, steps=["judge_calibration"], progress=False, quiet=True)
    assert "judge_calibration" not in res.children
    assert "judge_calibration" in res.attrs["skipped_judge_calibration"] or "evaluations" in \
        res.attrs["skipped_judge_calibration"]
