"""Test doubles: OpenAI-compatible VLM servers that answer from a script, misbehave on purpose,
or know the answers.

- :mod:`bench.doubles.scripted_server`: a local chat-completions server on ``127.0.0.1`` that
  replies from a queue of specs (:mod:`bench.doubles.replies`: text, tool calls, HTTP errors,
  slow, reset and truncated replies), so tests drive the real ``openai`` client over real HTTP;
- :mod:`bench.doubles.oracle_vlm`: a policy for that server that knows each expression's target.

Tests, the chaos scorecard (:mod:`bench.chaos`) and the benchmarks (:mod:`bench.benchmarks`)
import them; no product module does (``tests/architecture`` checks it). They live in the
package rather than in ``tests/`` because ``python -m bench.chaos`` and ``refseg bench ground``
run them on an installed copy.
"""
