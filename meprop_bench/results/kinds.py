"""Every result kind meprop-bench writes, as a :class:`~meprop_bench.results.schema.Schema`:
benchmark extra_info, training, check, gate verdict, profile manifest and recorded
gradients. Writers build their documents with :func:`meprop_bench.results.files.envelope`
(which checks them against these) and readers load them with
:func:`meprop_bench.results.files.read_result`.

``python -m meprop_bench.results.kinds`` prints docs/schemas.md (a test checks that the
committed page is its output).
"""

from __future__ import annotations

import torch

from meprop_bench.results.schema import (
    ENVELOPE,
    INT,
    LIST,
    NONE,
    NUMBER,
    OBJECT,
    TEXT,
    Field,
    Schema,
)

BOOL = (bool,)
TENSOR = (torch.Tensor,)

BENCHMARK = Schema(
    "meprop-bench/benchmark", 5, "Benchmark extra_info",
    "Each benchmark of a suite's pytest-benchmark JSON (`--benchmark-json`) carries these in "
    "its `extra_info`; the file's `machine_info` carries the envelope's `machine` fields "
    "with `meprop_schema`, `meprop_schema_version`, `meprop_preset` and `meprop_slowdown`.",
    (
        Field("method", TEXT, "dense, topk, randk or unified"),
        Field("strategy", TEXT, "the product form, e.g. native, compact, masked"),
        Field("batch", INT, "batch size B"),
        Field("B", INT, "the same, under the paper's name"),
        Field("k", INT, "entries kept per example (unified: per batch); n for dense"),
        Field("dtype", TEXT, "float32, float64, bfloat16 or float16"),
        Field("device", TEXT, "cpu, cuda or cuda:N"),
        Field("threads", INT + NONE, "intra-op threads in force"),
        Field("pair_key", TEXT, "what a sparse case shares with its dense partner"),
        Field("timer", TEXT, "perf-counter, cuda-events or cuda-graph"),
        Field("d_in", INT, "input width", optional=True),
        Field("n", INT, "output width", optional=True),
        Field("grads", TEXT, "gaussian (synthetic) or recorded (real MNIST MLP gradients)",
              optional=True),
        Field("k_over_n", NUMBER, "k / n", optional=True),
        Field("ideal_speedup", NUMBER, "n / k: the speedup if time were proportional to k",
              optional=True),
        Field("flops", INT, "the floating-point operations of the kept products", optional=True),
        Field("min_bytes", INT, "the least memory traffic of the case", optional=True),
        Field("case_id", TEXT, "the case's id in test names", optional=True),
        Field("pairs_with", TEXT, "the dense partner's case_id", optional=True),
        Field("compact_dw", BOOL, "dW returned as the touched rows only", optional=True),
        Field("suite", TEXT, "backward, layer, selection, paper, train_step or model_step",
              optional=True),
        Field("model_preset", TEXT, "the `meprop-bench model` preset timed (model_step)",
              optional=True, since=3),
        Field("selection", TEXT, "the selection timed (selection suite)", optional=True),
        Field("paper_shape", TEXT, "the paper's shape, e.g. mnist-mlp", optional=True),
        Field("paper_source", TEXT, "the table or section it comes from", optional=True),
        Field("sparse_grad", BOOL, "dW as a sparse gradient (layer, train_step)",
              optional=True),
        Field("hidden", INT, "hidden width (train_step)", optional=True),
        Field("max_step_speedup", NUMBER, "the train step's ideal speedup", optional=True),
        Field("optimizer", TEXT, "the train step's optimizer, e.g. Adam (fused)",
              optional=True, since=2),
        Field("injected_slowdown", NUMBER, "MEPROP_BENCH_SLOWDOWN applied to this case",
              optional=True),
        Field("minor_faults_per_call", NUMBER, "median page faults per timed call (CPU)",
              optional=True),
        Field("time_spread", NUMBER, "its rounds' IQR / median", optional=True, since=3),
        Field("steps_per_round", INT, "training-step suites (train_step, model_step): "
              "consecutive steps in each timed round, whose time per step is the sample",
              optional=True, since=4),
        Field("steady", BOOL, "training-step suites: the warm-up's blocks reached a steady "
              "time (false: it stopped at its time limit)", optional=True, since=4),
        Field("paired_steps_per_round", INT, "training-step suites, a sparse step: "
              "consecutive steps of its dense partner in each round",
              optional=True, since=5),
        Field("paired_dense_s", LIST, "training-step suites, a sparse step: its dense "
              "partner's time per step in each round, timed just before the case's own "
              "block of the same round", optional=True, since=5),
        Field("paired_speedup", NUMBER, "training-step suites, a sparse step: the median "
              "of the per-round ratios dense / sparse (the report's speedup for the "
              "step)", optional=True, since=5),
        Field("paired_low", NUMBER, "its 95% bootstrap interval's low end",
              optional=True, since=5),
        Field("paired_high", NUMBER, "its 95% bootstrap interval's high end",
              optional=True, since=5),
        Field("unstable", LIST, "why the case is unstable: dense's rounds varying by more "
              "than half their median, or (a sparse case) its speedup's 95% interval "
              "against the dense partner run just before it wider than a factor of 2; "
              "empty when stable",
              optional=True, since=3),
    ),
    envelope=False,
)  # fmt: skip

MACHINE_STATE = Schema(
    "meprop-bench/machine-state", 1, "Machine state",
    "How busy the machine was while the work ran (`meprop_bench.results.machine_state`): "
    "every result's `machine` (a benchmark file's `machine_info`) carries it as `state`. "
    "Linux only: elsewhere the figures are null and `quiet` is null.",
    (
        Field("seconds", NUMBER, "the span it covers: the timed work"),
        Field("cpus", INT, "logical CPUs"),
        Field("load_1min_start", NUMBER + NONE, "1-minute load average at the start"),
        Field("load_1min_end", NUMBER + NONE, "and at the end (it counts this work too)"),
        Field("other_cores", NUMBER + NONE, "CPU time other processes took over the span, "
              "in cores (this process, its children and workers excluded)"),
        Field("steal", NUMBER + NONE, "fraction of CPU time the hypervisor gave to others"),
        Field("other_runnable_start", INT + NONE, "other processes running or ready at "
              "the start"),
        Field("other_runnable_end", INT + NONE, "likewise at the end"),
        Field("governor", TEXT + NONE, "cpu0's frequency governor; null where none is "
              "exposed (most VMs)"),
        Field("quiet", BOOL + NONE, "other_cores below 0.25 and steal below 5%"),
    ),
    envelope=False,
)  # fmt: skip

EPOCH = (
    Field("epoch", INT, "1-based"),
    Field("train_loss", NUMBER, "mean over the epoch's examples"),
    Field("train_acc", NUMBER, "on the fly, in training mode"),
    Field("dev_acc", NUMBER, "accuracy on the dev split"),
    Field("test_acc", NUMBER, "accuracy on the test split"),
    Field("forward_s", NUMBER, "forward time summed over the epoch's minibatches"),
    Field("backward_s", NUMBER, "backward time, likewise"),
    Field("step_s", NUMBER, "optimizer step time (with the recipe's gradient clip)"),
    Field(
        "max_abs_logit",
        NUMBER,
        "after the epoch, in evaluation mode on the dev split: "
        "the largest absolute logit of any example and class",
        since=3,
    ),
    Field(
        "hidden_norm",
        LIST,
        "likewise, per hidden layer: the mean over dev examples of the L2 norm of its ReLU output",
        since=3,
    ),
)
RUN = (
    Field("label", TEXT, 'e.g. "topk k=20 h=500"'),
    Field("recipe", TEXT, "torch or authors (v1 files read as torch)", since=2),
    Field("data", TEXT, "the data set: embedded, mnist or fashion (earlier files read "
          "the file's data.name)", since=3),
    Field("train_size", INT, "training images the run trained on: all, or a stratified "
          "subset (--train-size; earlier files read the file's data.train)", since=3),
    Field("method", TEXT, "dense, topk, randk or unified"),
    Field("kernel", TEXT, "the hidden layers' backward kernel, e.g. topk/native", since=2,
          optional=True),
    Field("k", INT + NONE, "the count kept per layer; null for dense"),
    Field("hidden", INT, "hidden width"),
    Field("layers", INT, "hidden layers"),
    Field("dropout", NUMBER, "dropout after each hidden ReLU"),
    Field("seed", INT, "the run's seed"),
    Field("optimizer", TEXT, "adam or sgd"),
    Field("lr", NUMBER, "learning rate"),
    Field("optimizer_impl", TEXT, "fused (torch.optim's fused kernels); absent: the "
          "per-parameter loop of earlier versions, the same update", since=3, optional=True),
    Field("batch_size", INT, "minibatch size"),
    Field("best_epoch", INT, "1-based; the first epoch of highest dev accuracy"),
    Field("best_dev_acc", NUMBER, "its dev accuracy"),
    Field("test_acc_at_best", NUMBER, "test accuracy at that epoch"),
    Field("wall_s", NUMBER, "the run's wall time"),
    Field("kept", OBJECT, "per hidden layer, per unit: the examples whose backward passed "
          "that unit a nonzero gradient", since=2),
    Field("kept_of", INT, "examples back-propagated in all", since=2),
    Field("epochs", LIST, "one record per epoch", items=EPOCH),
)  # fmt: skip
TRAINING = Schema(
    "meprop-bench/training", 3, "Training",
    "What `meprop-bench train` writes: the paper's MNIST MLP trained dense or with meProp, "
    "one record per (recipe, configuration, seed). Accuracies are fractions in [0, 1], times "
    "seconds (`time.perf_counter`, after a CUDA synchronise on a GPU).",
    (
        Field("experiment", TEXT + NONE, "the set's name, or null for one configuration"),
        Field("config", OBJECT, "every command-line option after defaults are applied"),
        Field("data", OBJECT, "`name`, `source`, `split_seed`, the split sizes (`train`: "
              "every training image, before --train-size), and since v3 the normalisation "
              "`mean` and `std`"),
        Field("runs", LIST, "one record per run, in the order asked for", items=RUN),
    ),
    oldest=1,
)  # fmt: skip

CHECK = Schema(
    "meprop-bench/check", 3, "Check",
    "What `meprop-bench check --json` writes: dense and each kernel timed interleaved at one "
    "shape; speedups are medians of per-round ratios to dense. (v2: `dtype` is the name, "
    "e.g. float32, not torch's spelling. v3: each row's stability, and the machine's "
    "`state`.)",
    (
        Field("params", OBJECT, "batch, d_in, n, k, k_over_n, ideal_speedup, device, dtype, "
              "threads, rounds, warmup, seed, input, timer (perf-counter, cuda-events or "
              "cuda-graph), cache (shared, warm or cold; absent in files before it existed: "
              "shared), malloc (default or steady; likewise absent before), need_dx (false: dX "
              "not computed; absent before: true)"),
        Field("results", LIST, "one record per kernel, dense first", items=(
            Field("kernel", TEXT, "method/strategy"),
            Field("median_s", NUMBER, "median time per call"),
            Field("q1_s", NUMBER, "first quartile"),
            Field("q3_s", NUMBER, "third quartile"),
            Field("speedup", NUMBER, "median of dense/kernel per round"),
            Field("speedup_q1", NUMBER, "its first quartile"),
            Field("speedup_q3", NUMBER, "its third quartile"),
            Field("minor_faults_median", NUMBER + NONE, "page faults per call (CPU)"),
            Field("samples_s", LIST, "every timed call"),
            Field("time_spread", NUMBER, "its rounds' IQR / median", since=3),
            Field("unstable", LIST, "why the row is unstable (its interval q1-q3 wider than "
                  "a factor of 2, dense's rounds varying by more than half their median; "
                  "then also its page faults when they vary); empty when stable (see "
                  "`meprop_bench.stability`)", since=3),
            Field("above_bound", BOOL, "its interval lies above n/k (q1 > n/k): a "
                  "measurement error",
                  since=3),
        )),
    ),
    oldest=2,
)  # fmt: skip

GATE = Schema(
    "meprop-bench/gate", 4, "Gate verdict",
    "What `meprop-bench gate --json` (and `ab`) writes. (v2: undecided, exit 3, apart from "
    "unusable, exit 2; the common shifts. v3: the groups judged together. v4: adaptive "
    "rounds, `ab --rounds auto`: the looks and when each comparison decided.)",
    (
        Field("verdict", TEXT, "pass, regression, unusable or undecided"),
        Field("exit_code", INT, "0, 1, 2 or 3, as the command exits"),
        Field("rule", OBJECT, "alpha, min_effect, min_samples and group_thresholds"),
        Field("allow_machine_change", BOOL, "absolute times compared across machines"),
        Field("baseline", OBJECT, "its `files` and `machines`"),
        Field("candidate", OBJECT, "likewise"),
        Field("notes", LIST, "what the reader should know (one line each)"),
        Field("shifts", OBJECT, "per kind (time, speedup), the common shift of a single-run "
              "comparison"),
        Field("groups", LIST, "one run a side: each method's and strategy's benchmarks "
              "judged together", since=3, items=(
            Field("kind", TEXT, "time or speedup"),
            Field("name", TEXT, "e.g. `method unified`, `strategy topk/native`"),
            Field("count", INT, "its benchmarks"),
            Field("status", TEXT, "ok, improvement or regression"),
            Field("reason", TEXT, "why, in words"),
            Field("change", NUMBER, "its median change beyond the common shift, > 0 worse"),
            Field("versus_rest", NUMBER, "Hodges-Lehmann shift against the other benchmarks"),
            Field("p_value", NUMBER, "two-sided Mann-Whitney, adjusted over the groups (BH)"),
        )),
        Field("sequential", OBJECT + NONE, "adaptive rounds (`gate --sequential`, `ab --rounds "
              "auto`), else null: `min_rounds` and `max_rounds` (the first and last look), "
              "`spending` (pocock: Lan-DeMets, Pocock-type), `look_alpha` (the alpha each "
              "look spends, from the first), `correction` (holm: Holm's step-down over the "
              "comparisons at each look, for a regression or improvement), `family` (the "
              "comparisons judged together), `rounds` (the most any comparison used), "
              "`decided_by_round` (round -> comparisons decided there) and `open` "
              "(comparisons no look decided)", since=4),
        Field("rows", LIST, "one record per benchmark compared", items=(
            Field("kind", TEXT, "time or speedup"),
            Field("key", TEXT, "what matches the two sides"),
            Field("name", TEXT, "the benchmark"),
            Field("group", TEXT, "its pytest-benchmark group"),
            Field("min_effect", NUMBER, "the smallest change that counts here"),
            Field("baseline", NUMBER, "baseline median (s, or x for speedups)"),
            Field("candidate", NUMBER, "candidate median"),
            Field("unit", TEXT, "s or x"),
            Field("status", TEXT, "ok, improvement, regression, undecided or refused"),
            Field("reason", TEXT, "why, in words"),
            Field("n_base", INT, "baseline samples"),
            Field("n_cand", INT, "candidate samples"),
            Field("change", NUMBER + NONE, "the change, > 0 worse"),
            Field("low", NUMBER + NONE, "its interval's low end"),
            Field("high", NUMBER + NONE, "its interval's high end"),
            Field("p_value", NUMBER + NONE, "one-sided, in the direction of the change"),
            Field("shift", NUMBER + NONE, "the common shift judged against"),
            Field("rounds", INT + NONE, "adaptive rounds: the rounds a side it was looked at "
                  "on; else null", since=4),
            Field("decided_round", INT + NONE, "adaptive rounds: the round whose look "
                  "decided it; null when none did (or not adaptive)", since=4),
        )),
        Field("only_in_baseline", LIST, "benchmarks the candidate lacks"),
        Field("only_in_candidate", LIST, "benchmarks the baseline lacks"),
    ),
    oldest=2,
)  # fmt: skip

PROFILE = Schema(
    "meprop-bench/profile", 1, "Profile manifest",
    "`profile.json`, what `meprop-bench profile` writes beside its flame graph and traces.",
    (
        Field("case", OBJECT, "the case, as the suites describe it"),
        Field("case_id", TEXT, "its id in the suites' test names"),
        Field("threads", INT, "intra-op threads in force"),
        Field("duration_s", NUMBER, "seconds each profile ran the case"),
        Field("warmup", INT, "untimed calls first"),
        Field("torch_profiler", OBJECT, "iterations, windows, wall_s, ms_per_iteration and "
              "the time per operator category"),
        Field("py_spy", OBJECT, "whether py-spy ran, and why not"),
        Field("files", OBJECT, "what each written file is"),
    ),
)  # fmt: skip

GRADIENTS = Schema(
    "meprop-bench/gradients", 1, "Recorded gradients",
    "A `torch.save` file of real (dY, x, W) captured while training the MNIST MLP, for "
    "`--meprop-grads recorded`; cached under `$MEPROP_BENCH_CACHE`.",
    (
        Field("schema", TEXT, "`meprop-bench/gradients`"),
        Field("schema_version", INT, "1"),
        Field("meta", OBJECT, "hidden, batch, steps, seed, method, k, layers, torch"),
        Field("samples", LIST, "one record per (layer, step)", items=(
            Field("layer", TEXT, "the hidden layer's name"),
            Field("step", INT, "the training step"),
            Field("dy", TENSOR, "the output gradient"),
            Field("x", TENSOR, "the layer's input"),
            Field("w", TENSOR, "its weight"),
        )),
    ),
    envelope=False,
)  # fmt: skip

ROUNDS = (
    Field("dense_rounds_s", LIST, "dense's mean time in each round's block"),
    Field("meprop_rounds_s", LIST, "meProp's, round by round (paired with dense's)"),
)
MODEL = Schema(
    "meprop-bench/model", 2, "Model step",
    "What `meprop-bench model --out` writes: training steps of one model, dense against "
    "meProp in one process, alternated by rounds of consecutive steps (docs/model.md). "
    "Speedups are medians of per-round ratios dense / meProp with a 95% bootstrap interval; "
    "times are seconds per step.",
    (
        Field("params", OBJECT, "model (preset name or package.module:factory), method, "
              "strategy, k (as given: a count or a fraction of each layer's n), keep_dense "
              "(fnmatch patterns), optimizer, threads, rounds, auto_rounds, block (steps a "
              "side per round), warmup_blocks, steady (warm-up reached steady state), device, "
              "dtype, seed, parameters, malloc (the C allocator setting, v2)"),
        Field("step_speedup", NUMBER, "the whole step: median of per-round ratios"),
        Field("step_speedup_low", NUMBER, "its 95% interval's low end (NaN: too few rounds)"),
        Field("step_speedup_high", NUMBER, "and high end"),
        Field("step_bound", NUMBER, "the step's speedup were each swapped layer's in-step "
              "backward k/n of dense's and nothing else changed"),
        Field("unstable", LIST, "why the step speedup is unstable (see "
              "`meprop_bench.stability`); empty when stable"),
        Field("parts", LIST, "the step and its parts", items=(
            Field("part", TEXT, "step, forward (the loss), backward or optimizer (step and "
                  "zero_grad)"),
            Field("dense_s", NUMBER, "dense's median over rounds"),
            Field("meprop_s", NUMBER, "meProp's"),
            Field("speedup", NUMBER, "median of per-round ratios"),
            Field("low", NUMBER, "95% interval"),
            Field("high", NUMBER, "95% interval"),
            Field("dense_faults", NUMBER + NONE, "dense's minor page faults per step in "
                  "this part, median over rounds; null where the system does not count them",
                  optional=True, since=2),
            Field("meprop_faults", NUMBER + NONE, "meProp's", optional=True, since=2),
            *ROUNDS,
        )),
        Field("layers", LIST, "one record per swapped layer", items=(
            Field("name", TEXT, "its name in the model"),
            Field("shape", TEXT, "rows x d_in -> n"),
            Field("rows", INT, "rows of its input per step (tokens, examples)"),
            Field("d_in", INT, "input width"),
            Field("n", INT, "output width"),
            Field("k", INT, "entries kept"),
            Field("ideal_speedup", NUMBER, "n / k"),
            Field("kernel", TEXT, "the backward kernel meProp ran, method/strategy"),
            Field("dx_in_step", BOOL, "the step computes its dX (false: its input needs no "
                  "gradient, and the isolated figures leave dX out too)"),
            Field("in_step_dense_s", NUMBER, "dense layer's backward inside dense's step "
                  "(its autograd node, by hooks)"),
            Field("in_step_meprop_s", NUMBER, "meProp layer's inside meProp's step"),
            Field("in_step_speedup", NUMBER, "median of per-round ratios"),
            Field("in_step_low", NUMBER, "95% interval"),
            Field("in_step_high", NUMBER, "95% interval"),
            Field("isolated_dense_s", NUMBER + NONE, "dense backward alone at the same shape "
                  "(`meprop-bench check`'s engine); null: not measured"),
            Field("isolated_meprop_s", NUMBER + NONE, "the same kernel alone, same k"),
            Field("isolated_speedup", NUMBER + NONE, "median of per-round ratios"),
            Field("isolated_low", NUMBER + NONE, "95% interval"),
            Field("isolated_high", NUMBER + NONE, "95% interval"),
            Field("dw_cosine", NUMBER, "cosine of meProp's dW to dense's, same weights and "
                  "batch"),
            Field("dx_cosine", NUMBER + NONE, "likewise for dX; null when not computed"),
            *ROUNDS,
        )),
        Field("kept_dense", LIST, "the nn.Linear layers left dense"),
        Field("memory", OBJECT, "measure (rss: the process's resident set, Linux, after the "
              "C allocator's free memory went back to the system; "
              "cuda-allocated; unavailable), dense_peak_bytes, meprop_peak_bytes (the peak of "
              "one step) and dense_step_bytes, meprop_step_bytes (that peak above what was "
              "held when the step began); null where unavailable"),
    ),
)  # fmt: skip

KINDS = (BENCHMARK, TRAINING, CHECK, MODEL, GATE, PROFILE, GRADIENTS, MACHINE_STATE)


def markdown() -> str:
    """docs/schemas.md."""
    intro = (
        "# Result schemas\n\n"
        "Generated by `python -m meprop_bench.results.kinds` from the schemas the writers "
        "and readers use (a test keeps this page equal to its output). Every file carries "
        "`schema` and `schema_version`; readers accept the versions each section names and "
        "refuse others with a one-line error.\n\n"
        "## The envelope\n\nEvery result file but the gradients starts with:\n\n"
        "| field | type | since | meaning |\n|---|---|---|---|\n"
    )
    envelope = "\n".join(f"| `{f.name}` | {f.type_name()} | v{f.since} | {f.doc} |"
                         for f in ENVELOPE)  # fmt: skip
    return intro + envelope + "\n\n" + "\n\n".join(kind.markdown() for kind in KINDS) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
