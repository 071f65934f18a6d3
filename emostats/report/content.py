"""Build the report's content model from a results tree (once; every writer renders it).

One section per topic (:mod:`emostats.report.sections`, found automatically and
placed in the order of the steps they render); a section whose steps did not run
says why. Numbers are read from the results tree only, so the report of a results
file matches the run exactly.
"""

from ..defaults import ALPHA as _ALPHA
from ..pipeline import STEPS
from .methods import methods_section, param, provenance_section
from .model import Document, Paragraph
from .sections import load_sections
from .sections._blocks import command_of

__all__ = ["build_document", "with_summary"]


def with_summary(results):
    """The results with a ``summary`` group: the one of the run, else computed here from the groups present
    (a preset without the summary step); the computed one is marked ``computed_by = "report"``."""
    import xarray as xr

    from ..pipeline.summary import summary_table

    if "summary" in results.children or not results.children:
        return results
    groups = {name: results[name].to_dataset(inherit=False) for name in results.children}
    params = {"lag": param(results, "lag"), "alpha": param(results, "alpha", _ALPHA)}
    skipped = {k[len("skipped_"):]: v for k, v in results.attrs.items() if k.startswith("skipped_")}
    ds = summary_table(groups, params, skipped=skipped)
    ds.attrs["computed_by"] = "report"
    out = results.copy()
    out["summary"] = xr.DataTree(ds)
    return out


def build_document(results, figures):
    """The :class:`~emostats.report.model.Document` of a results tree and its drawn figures."""
    results = with_summary(results)
    a = results.attrs
    title = "Persistence of emotion features"
    model = a.get("study_model")
    subtitle = f"emostats report on {a.get('input_files') or 'a study'}"
    if model:  # a local file path names the model by its file name (the provenance keeps the path);
        # a hub id such as org/name stays whole
        name = str(model).replace("\\", "/").rstrip("/")
        if name.startswith(("/", "~", ".")) or name[1:3] == ":/":
            name = name.rsplit("/", 1)[-1]
        subtitle += f" (model: {name or model})"
    doc = Document(title, subtitle=subtitle, date=str(a.get("report_created", ""))[:10],
                   keywords=("emotion probes", "persistence", "sparse autoencoders"))
    ran = [s for s in STEPS if s in results.children]
    doc.lead.append(Paragraph(
        "This report reproduces the analyses of *Persistence and Introspection of Emotion Features* "
        f"(Sauers et al., 2026) on one study file: {len(ran)} of {len(STEPS)} analyses ran; a section whose "
        f"analysis did not run says why. Every number comes from `{command_of(results)}`; the methods "
        "and the provenance are at the end (@sec-methods, @sec-provenance)."))
    for sec in load_sections():
        doc.sections.append(sec.build(results, figures))
    doc.sections.append(methods_section(results))
    doc.sections.append(provenance_section(results))
    return doc
