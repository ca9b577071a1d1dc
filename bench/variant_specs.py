"""Every variant's metadata, defined once: what it runs (generator, context, edit), how it is named in tables
and plots (label, colour) and the order reports list it in (the order of :data:`SPECS`). The runner
(bench.eval.variants), the scoring, the tables and the plots all read it from here; a layout test fails on a
second table of labels, colours or order. Ground level: the config's default variant list comes from here too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VariantSpec:
    name: str
    generator: str  # key in make_generators(): "base" | "ft"; "none" for no-model baselines
    context: str  # "none" | "retrieval" | "gold" | "gold_page" (bench.eval.contexts)
    description: str
    label: str  # in tables and plots; "{gold}" is the run's gold context ("gold sentence", "gold paragraph")
    color: str  # matplotlib colour, one per variant
    edit: str = ""  # "counterfactual": the gold answer in the passages replaced (bench.eval.train_answers)

    @property
    def uses_retrieval(self) -> bool:
        """Needs the index (the retrieval and gold-page kinds)."""
        return self.context in ("retrieval", "gold_page")

    @property
    def retrieves(self) -> bool:
        """Searches the whole index (recall@k means something)."""
        return self.context == "retrieval"

    @property
    def uses_adapter(self) -> bool:
        return self.generator == "ft"

    @property
    def uses_model(self) -> bool:
        return self.generator != "none"


SPECS = (  # in report order
    VariantSpec("base", "base", "none", "base model, closed book", "base", "tab:blue"),
    VariantSpec("rag", "base", "retrieval", "base model + top-k retrieved chunks", "RAG", "tab:orange"),
    VariantSpec("ft", "ft", "none", "base model + fine-tuned LoRA adapter, closed book", "FT", "tab:green"),
    VariantSpec(
        "ft_rag", "ft", "retrieval", "fine-tuned adapter + top-k retrieved chunks", "FT+RAG", "tab:red",
    ),
    VariantSpec(
        "oracle", "base", "gold", "base model given the gold sentence (reading ceiling)", "oracle ({gold})",
        "tab:purple",
    ),
    VariantSpec(
        "oracle_page", "base", "gold_page", "base model given the gold page's top-k chunks",
        "oracle (gold page)", "indigo",
    ),
    VariantSpec(
        "rag_cf", "base", "retrieval", "rag with the gold answer in the passages replaced",
        "RAG, counterfactual context", "darkorange", "counterfactual",
    ),
    VariantSpec(
        "ft_rag_cf", "ft", "retrieval", "ft_rag with the gold answer replaced",
        "FT+RAG, counterfactual context", "darkred", "counterfactual",
    ),
    VariantSpec(
        "echo", "none", "none", "no model: answers with the question itself", "echo (question)", "tab:gray",
    ),
    VariantSpec(
        "prior", "none", "none", "no model: the most frequent train answer of the relation",
        "prior (top train answer)", "black",
    ),
    VariantSpec(
        "picker_rag", "none", "retrieval", "no model: retrieved sentence with most question words",
        "picker (retrieved)", "tab:olive",
    ),
    VariantSpec(
        "picker_oracle", "none", "gold", "no model: gold-paragraph sentence with most question words",
        "picker ({gold})", "tab:brown",
    ),
    VariantSpec(
        "span_rag", "none", "retrieval", "no model: best-typed span of the retrieved chunks",
        "typed span (retrieved)", "tab:cyan",
    ),
    VariantSpec(
        "span_oracle", "none", "gold", "no model: best-typed span of the gold paragraph",
        "typed span ({gold})", "tab:pink",
    ),
)  # fmt: skip
VARIANTS: dict[str, VariantSpec] = {s.name: s for s in SPECS}
ORDER = tuple(VARIANTS)
# What a run answers unless run.variants says otherwise (the counterfactual pair is asked for by name).
DEFAULT_RUN = (
    "base", "rag", "ft", "ft_rag", "oracle", "oracle_page", "echo", "prior",
    "picker_oracle", "picker_rag", "span_oracle", "span_rag",
)  # fmt: skip
BASELINES = tuple(s.name for s in SPECS if not s.uses_model)  # the no-model baselines
