"""Selection alone (per-example top-k, unified top-k, random-k), to set the cost of
choosing the k entries against the cost of the products in test_backward."""

from meprop_bench.core.selection import randk_per_example, topk_per_example, unified_topk

SELECT = {"topk": topk_per_example, "unified": unified_topk, "randk": randk_per_example}


def test_selection(meprop, selection_case):
    selection, case, threads = selection_case
    dy, _, _ = meprop.inputs(case)
    select, k = SELECT[selection], case.k
    meprop.run(
        lambda: select(dy, k),
        device=case.device,
        thread_count=threads,
        extra_info={**case.extra_info(threads), "suite": "selection", "selection": selection},
        group=f"selection {case.pair_key}",
    )
