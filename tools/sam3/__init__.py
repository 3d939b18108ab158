"""SAM 3 toolset (``--toolset sam3``, the ``sam3`` extra): SAM 3 through ``transformers``.

- ``sam3_propose`` (:mod:`tools.sam3.propose`): the instances SAM 3 finds for the current
  query (a text "concept" prompt), with their scores (detection x presence); the image is
  encoded once per image and reused for every query of every expression on it.
- ``sam3_rank`` (:mod:`tools.sam3.rank`): SAM 3's own scores as the ranking (``clip_rank``
  can re-rank the same instances instead).
- ``sam3_prompt`` (:mod:`tools.sam3.prompt`): SAM 3's tracker draws a mask from a box and/or
  points, on the same image encoding.

They register through the ``refseg.tools`` entry points like any plugin. The model, its
weights and the tokenizer (built offline from the CLIP BPE vocabulary open_clip ships) are
:mod:`tools.sam3.loading`; the shared encodings and forwards are :mod:`tools.sam3.engine`.
"""
