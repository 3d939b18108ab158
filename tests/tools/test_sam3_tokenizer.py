"""SAM 3's tokenizer is built offline from open_clip's CLIP BPE vocabulary."""

from __future__ import annotations

import pytest
from open_clip.tokenizer import SimpleTokenizer

from tools.sam3.tokenizer import CONTEXT_LENGTH, VOCAB_SIZE, bpe_vocabulary_path, sam3_tokenizer

PHRASES = ["the truck", "A photo of the Black dog on the right!", "naïve café, 12 o'clock", "  two   spaces "]


def test_the_tokenizer_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the hub unreachable (offline mode, and any hub download an error), it still builds."""
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the SAM 3 tokenizer tried to download something")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    sam3_tokenizer.cache_clear()
    tokenizer = sam3_tokenizer()
    assert len(tokenizer) == VOCAB_SIZE
    assert bpe_vocabulary_path().name == "bpe_simple_vocab_16e6.txt.gz"


@pytest.mark.parametrize("phrase", PHRASES)
def test_ids_are_clip_ids_padded_to_32(phrase: str) -> None:
    ours = sam3_tokenizer()(phrase, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True)
    clip = SimpleTokenizer()(phrase, context_length=CONTEXT_LENGTH)[0].tolist()
    n = sum(ours["attention_mask"])
    assert len(ours["input_ids"]) == CONTEXT_LENGTH
    assert ours["input_ids"][:n] == clip[:n]  # bos, the BPE tokens, eos: CLIP's own ids
    assert ours["input_ids"][0] == 49406 and ours["input_ids"][n - 1] == 49407
    assert ours["attention_mask"] == [1] * n + [0] * (CONTEXT_LENGTH - n)


def test_a_long_query_is_cut_to_32_tokens_keeping_its_end_token() -> None:
    ids = sam3_tokenizer()("dog " * 60, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True)
    assert len(ids["input_ids"]) == CONTEXT_LENGTH and ids["input_ids"][-1] == 49407
