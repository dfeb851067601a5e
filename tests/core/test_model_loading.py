"""No "Loading weights" tqdm bar on stderr when our code loads a model (found by a fresh-user
tryout of ``mm-assets run``), and the bars stay on for everyone else's loads. A tiny random
GPT-2 with a word-level tokenizer, built here (offline, < 1 s)."""

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers

    path = tmp_path_factory.mktemp("tiny_lm")
    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "a", "cat", "sat"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>",
                                               eos_token="<eos>")
    cfg = transformers.GPT2Config(vocab_size=len(vocab), n_positions=16, n_embd=8, n_layer=1,
                                  n_head=2)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def test_load_lm_draws_no_progress_bar_and_restores_the_switches(tiny_lm, capfd):
    from transformers.utils import logging as hf_logging

    from mm_assets.core.quality.lm import load_lm

    hf_logging.enable_progress_bar()
    capfd.readouterr()
    lm = load_lm(tiny_lm, "cpu", "float32")
    assert lm.model.config.n_layer == 1
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # put back: other code keeps its bars
    transformers.AutoModelForCausalLM.from_pretrained(tiny_lm)  # not ours: bar as usual
    assert "Loading weights" in capfd.readouterr().err


def test_quiet_block_restores_a_disabled_state_and_survives_errors():
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    from mm_assets.core.model_loading import quiet_model_loading

    hf_logging.disable_progress_bar()
    try:
        with quiet_model_loading():
            assert not hf_logging.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled() and are_progress_bars_disabled()
    finally:
        hf_logging.enable_progress_bar()
        enable_progress_bars()
    with pytest.raises(RuntimeError), quiet_model_loading():
        raise RuntimeError("load failed")
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
