"""report (global): the corpus funnel over every stage and every mixture, as metadata + HTML."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from mm_assets.assets._common import Timer
from mm_assets.browse.gallery import report_galleries
from mm_assets.core import layout
from mm_assets.core.report.funnel import build_funnel
from mm_assets.core.report.render import render_html, table_rows
from mm_assets.viz.plots import funnel_png, png_markdown
from resources.storage import StorageResource

REPORT_HTML = layout.FUNNEL_HTML
FUNNEL_SCHEMA = TableSchema(columns=[
    TableColumn("stage", "string"), TableColumn("figure", "string"),
    TableColumn("samples", "int"), TableColumn("meaning", "string")])


@asset(deps=["raw_shards", "exact_duplicates", "semdedup", "curated", "merged", "rephrased",
             "mixtures"], group_name="report", kinds={"html"},
       check_specs=[AssetCheckSpec("funnel_reconciles", asset="report",
                                   description="every figure recorded by two stages agrees")])
def report(context, storage: StorageResource) -> MaterializeResult:
    """The corpus funnel (records read -> quarantined -> exact / near duplicates -> SemDeDup ->
    quality filters -> curated -> merged -> each mixture), every figure summed over all
    committed partitions, with what each removal means; ``reports/funnel.html``. Same numbers
    as ``mm-assets report``. Also writes the sample galleries of
    :data:`~mm_assets.browse.gallery.REPORT_VIEWS` (``mm-assets sample``, seed 0) under
    ``reports/galleries/{view}/`` and links them (``gallery_{view}``)."""
    store = storage.store()
    with Timer() as t:
        funnel = build_funnel(store)
        png = funnel_png(funnel)
        page = render_html(funnel, store.root, {"the funnel as bars": png})
        store.write_bytes(REPORT_HTML, page.encode())
        galleries = report_galleries(store)
    failed = [c for c in funnel.checks if not c.ok]
    headline = {f"corpus_{k}": v for k, v in funnel.headline().items()}
    return MaterializeResult(metadata={
        "funnel": MetadataValue.table([TableRecord(r) for r in table_rows(funnel)],
                                      FUNNEL_SCHEMA),
        **headline, "checks_passed": len(funnel.checks) - len(failed),
        "checks": len(funnel.checks), "funnel_plot": png_markdown(png),
        "html": MetadataValue.path(store.url(REPORT_HTML)), "seconds": t.seconds,
        **{f"gallery_{v}": MetadataValue.path(url) for v, url in galleries.items()},
    }, check_results=[AssetCheckResult(
        check_name="funnel_reconciles", passed=not failed, severity=AssetCheckSeverity.ERROR,
        metadata={"failed": MetadataValue.json([[c.name, c.expected, c.actual]
                                                for c in failed])})])
