# medcap: every set-up step lives here. On a fresh machine `make test` and
# `make reproduce-model80` create .venv and install the package on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MEDCAP := $(BIN)/medcap
PYTEST_ARGS ?=

export PYTHONUNBUFFERED := 1

.PHONY: install beam-env test test-fast lint bench bench-gpu compare-iu-xray compare-mimic notebook reproduce-model80 reproduce-model70 reproduce-mtl \
	reproduce-mtl-sweep reproduce-clip reproduce-findings reproduce-findings-ablation reproduce-findings-report reproduce-findings-report-llm reproduce-findings-report-ablation clean help

help:
	@echo "make test                run the whole test suite (installs .venv on first use)"
	@echo "make test-fast           skip tests marked slow"
	@echo "make reproduce-model80   paper 000 Model-80: features -> train -> evaluate -> report (results/model80)"
	@echo "make reproduce-model70   paper 000 Model-70 (results/model70)"
	@echo "make reproduce-mtl       paper 001 STL x3, MTL-EQ, MTL-TP (+ no ICD title) -> Tables 1-4 (results/mtl; MIMIC_DIR=)"
	@echo "make reproduce-mtl-sweep paper 001 MTL-TP loss-weight sweep (results/mtl/sweep)"
	@echo "make reproduce-clip      paper 002 CLIP dual encoder, Tables 1 + 3 (results/clip; IU_XRAY_DIR=, BIOBERT_DIR=)"
	@echo "make reproduce-findings  paper 004 findings classifier: AUROC, localisation, sanity check, gallery (results/findings; CXR14_DIR=)"
	@echo "make reproduce-findings-ablation  paper 004 transfer-learning ablation -> results/findings/ablation.md (+ report.md)"
	@echo "make reproduce-findings-report  paper 003 findings -> structured description -> template report (results/findings_report; IU_XRAY_DIR=)"
	@echo "make compare-iu-xray     every system on IU X-ray, one leaderboard (results/compare_iu_xray; IU_XRAY_DIR=)"
	@echo "make compare-mimic       every system on MIMIC-CXR + MIMIC-IV-ED, one leaderboard (results/compare_mimic; MIMIC_DIR=)"
	@echo "make notebook            JupyterLab on notebooks/explore.ipynb (datasets, runs, leaderboards)"
	@echo "make reproduce-findings-report-llm  the same with an LLM writer (LLM_BASE_URL=, LLM_MODEL=)"
	@echo "make reproduce-findings-report-ablation  template vs LLM, ICIL and CoT on/off -> results/findings_report/ablation"
	@echo "make bench               ratio benchmarks in bench/"
	@echo "make bench-gpu           training examples/s, mixed/float32 and MFU per paper model (BENCH_GPU_ARGS=)"
	@echo "make lint                ruff (also run first by make test)"
	@echo "make beam-env            .venv-beam with apache-beam, for medcap data prepare --beam (make test builds it)"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# apache-beam pins protobuf, pyarrow and pillow a major version back, so it gets
# a venv of its own (the Beam build test runs its builds there).
BEAM_VENV := .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed-stamp

$(BEAM_STAMP): setup.cfg pyproject.toml
	test -x $(BEAM_VENV)/bin/python || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install --quiet -e ".[beam]"
	touch $(BEAM_STAMP)

beam-env: $(BEAM_STAMP)

# The notebook runs too (nbmake): it trains two smoke runs and opens them, about 2 minutes.
test: lint $(BEAM_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbmake tests notebooks $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

# The rule set is pyproject.toml's [tool.ruff.lint]; ruff is pinned in setup.cfg's dev extra.
lint: $(STAMP)
	$(BIN)/ruff check medcap tests bench experiments

# Paper models at paper sizes: float32 vs mixed precision, XLA off/on, MFU (small and quick without a GPU).
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu_throughput.py $(BENCH_GPU_ARGS)

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

reproduce-model80: $(STAMP)
	$(MEDCAP) train model80 --workdir results/model80 $(if $(MEDICAT_DIR),--data-dir $(MEDICAT_DIR),)

reproduce-model70: $(STAMP)
	$(MEDCAP) train model70 --workdir results/model70 $(if $(MEDICAT_DIR),--data-dir $(MEDICAT_DIR),)

# Paper 001: three single-task runs, MTL-EQ, MTL-TP, then Tables 1-4 + plots in results/mtl/report.md.
# MIMIC_DIR: the MIMIC-CXR-JPG + MIMIC-IV-ED download (default: synthetic MIMIC-format data).
# BERT_PRESET / CLINICAL_BERT_PRESET: local keras-hub presets for the BERTScore columns;
# BERT_BASELINE: bert-score's rescale baseline file (rescale_baseline/en/<model>.tsv) for BS_F1.
MTL_DATA = $(if $(MIMIC_DIR),--data-dir $(MIMIC_DIR),)
MTL_BERT = $(if $(BERT_PRESET),--bert-preset $(BERT_PRESET),) \
           $(if $(BERT_BASELINE),--bert-baseline $(BERT_BASELINE),) \
           $(if $(CLINICAL_BERT_PRESET),--clinical-bert-preset $(CLINICAL_BERT_PRESET),)

reproduce-mtl: $(STAMP)
	$(MEDCAP) train mtl_stl --workdir results/mtl/stl/report --set model.options.tasks=report $(MTL_DATA)
	$(MEDCAP) train mtl_stl --workdir results/mtl/stl/acuity --set model.options.tasks=acuity $(MTL_DATA)
	$(MEDCAP) train mtl_stl --workdir results/mtl/stl/findings --set model.options.tasks=findings $(MTL_DATA)
	$(MEDCAP) train mtl_eq --workdir results/mtl/eq $(MTL_DATA)
	$(MEDCAP) train mtl_tp --workdir results/mtl/tp $(MTL_DATA)
	$(MEDCAP) train mtl_tp_no_icd --workdir results/mtl/tp_no_icd $(MTL_DATA)
	$(BIN)/python -m medcap.models.mtl_regimes results/mtl $(MTL_BERT)

# The loss-weight sweep of experiments/mtl_tp_sweep.py; the report picks it up.
reproduce-mtl-sweep: $(STAMP)
	for w in 1.0,0.5,0.25 1.0,0.3,0.1 1.0,0.7,0.4 1.0,0.5,0.1 1.0,1.0,1.0; do \
	  $(MEDCAP) train mtl_tp_sweep --workdir results/mtl/sweep/w$$w \
	    --set "model.options.loss_weights=[$$w]" $(MTL_DATA) || exit 1; \
	done
	$(BIN)/python -m medcap.models.mtl_regimes results/mtl $(MTL_BERT)

# Paper 002. IU_XRAY_DIR: the IU X-ray download (R2Gen layout or OpenI); BIOBERT_DIR: a local
# Hugging Face BioBERT folder. Without them: synthetic IU X-ray-format data and a small random BERT.
CLIP_ARGS = $(if $(IU_XRAY_DIR),--data-dir $(IU_XRAY_DIR),) \
            $(if $(BIOBERT_DIR),--set model.options.text_encoder_preset=$(BIOBERT_DIR),)

reproduce-clip: $(STAMP)
	$(MEDCAP) train clip_densenet --workdir results/clip/clip_densenet $(CLIP_ARGS)
	$(MEDCAP) train clip_densenet_baseline --workdir results/clip/clip_densenet_baseline $(CLIP_ARGS)
	$(BIN)/python -m medcap.models.clip_report results/clip

# Paper 004. CXR14_DIR: the NIH ChestX-ray14 download (Data_Entry_2017*.csv, the split lists,
# BBox_List_2017.csv, images*/). Without it: the synthetic ChestX-ray14-format default. The run's
# evaluation writes results/findings/report.md (AUROC beside CheXNet's, thresholds, calibration,
# localisation against the boxes, the randomisation check) and the gallery in results/findings/explanations/.
reproduce-findings: $(STAMP)
	$(MEDCAP) train findings_chexnet --workdir results/findings $(if $(CXR14_DIR),--data-dir $(CXR14_DIR),)

# Pretrained vs scratch, head only vs fine-tuning from two depths (medcap/models/findings_ablation.py);
# the table goes into results/findings/report.md when reproduce-findings ran first.
reproduce-findings-ablation: $(STAMP)
	$(BIN)/python -m medcap.models.findings_ablation results/findings/ablation $(if $(CXR14_DIR),--data-dir $(CXR14_DIR),)

# Paper 003 with the template writer. IU_XRAY_DIR: the IU X-ray download (R2Gen's annotation.json and
# images/, or the OpenI XML + PNG release). Without it: a synthetic IU X-ray-format tree. Writes
# results/findings_report/report.md (text metrics, clinical efficacy, faithfulness, baselines),
# samples.md, review.csv, and the classifier's own report in results/findings_report/classifier/.
reproduce-findings-report: $(STAMP)
	$(MEDCAP) train findings_report_template --workdir results/findings_report $(if $(IU_XRAY_DIR),--data-dir $(IU_XRAY_DIR),)

# Paper 003 with an LLM writer: LLM_BASE_URL (an OpenAI-compatible endpoint) and LLM_MODEL must be set.
reproduce-findings-report-llm: $(STAMP)
	$(MEDCAP) train findings_report_llm --workdir results/findings_report_llm $(if $(IU_XRAY_DIR),--data-dir $(IU_XRAY_DIR),)

# Template vs LLM, ICIL and CoT on and off, on the classifier of reproduce-findings-report (run it first);
# the LLM rows need LLM_PRESET_DIR or LLM_BASE_URL (+ LLM_MODEL), else the table says none was configured.
reproduce-findings-report-ablation: $(STAMP)
	$(BIN)/python -m medcap.models.findings_to_report_ablation results/findings_report

# Every system on IU X-ray's R2Gen split, then one leaderboard (medcap compare) in results/compare_iu_xray/.
# IU_XRAY_DIR: the IU X-ray download (R2Gen layout); without it, one synthetic tree with realistic report
# variety. COMPARE_ARGS: extra `medcap train` arguments for every run (e.g. --smoke for the tiny version).
COMPARE_IU_XRAY = model80_iu_xray clip_iu_xray clip_baseline_iu_xray findings_report_iu_xray
COMPARE_DIR = results/compare_iu_xray
COMPARE_DATA = $(if $(IU_XRAY_DIR),--data-dir $(IU_XRAY_DIR),)

compare-iu-xray: $(STAMP)
	$(foreach e,$(COMPARE_IU_XRAY),$(MEDCAP) train $(e) --workdir $(COMPARE_DIR)/$(e) $(COMPARE_DATA) $(COMPARE_ARGS) &&) true
	$(MEDCAP) compare $(addprefix $(COMPARE_DIR)/,$(COMPARE_IU_XRAY)) --out $(COMPARE_DIR)

# The same on MIMIC-CXR + MIMIC-IV-ED (official split) into results/compare_mimic/. MIMIC_DIR: both releases
# (see medcap/data/mimic); without it, one synthetic tree of 1,000 studies with realistic report variety.
COMPARE_MIMIC = mtl_tp_mimic model80_mimic clip_mimic findings_report_mimic
COMPARE_MIMIC_DIR = results/compare_mimic

compare-mimic: $(STAMP)
	$(foreach e,$(COMPARE_MIMIC),$(MEDCAP) train $(e) --workdir $(COMPARE_MIMIC_DIR)/$(e) $(if $(MIMIC_DIR),--data-dir $(MIMIC_DIR),) $(COMPARE_ARGS) &&) true
	$(MEDCAP) compare $(addprefix $(COMPARE_MIMIC_DIR)/,$(COMPARE_MIMIC)) --out $(COMPARE_MIMIC_DIR)

# JupyterLab in the venv, on notebooks/explore.ipynb (installs the notebook extra on first use).
notebook: $(STAMP)
	test -x $(BIN)/jupyter-lab || $(BIN)/python -m pip install --quiet -e ".[notebook]"
	$(BIN)/jupyter-lab notebooks/explore.ipynb

clean:
	rm -rf build dist *.egg-info .pytest_cache
