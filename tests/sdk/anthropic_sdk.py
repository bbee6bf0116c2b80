"""The official anthropic Python SDK against Switchyard's Messages API.

Usage: anthropic_sdk.py BASE_URL MODEL

messages.create, then messages.stream (the SDK rebuilds the message from the events and
checks their order). Exits non-zero on the first failure; prints one JSON line.
"""
import json
import os
import sys

from anthropic import Anthropic

QUESTION = "What is the capital of France?"


def main() -> None:
    base, model = sys.argv[1], sys.argv[2]
    client = Anthropic(base_url=base, api_key=os.environ["SWITCHYARD_TOKEN"], max_retries=0, timeout=300)
    seen = {}
    # Greedy, so a local model's answer is known. This SDK version has no `temperature`
    # argument (newer Claude models choose their own); the API field still exists.
    greedy = {"temperature": 0}
    m = client.messages.create(
        model=model, max_tokens=64, extra_body=greedy,
        messages=[{"role": "user", "content": QUESTION}],
    )
    text = "".join(b.text for b in m.content if b.type == "text")
    assert "Paris" in text, m
    assert m.usage.input_tokens > 0, m.usage
    seen["create"] = text
    with client.messages.stream(
        model=model, max_tokens=64, extra_body=greedy,
        messages=[{"role": "user", "content": QUESTION}],
    ) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == "".join(b.text for b in final.content if b.type == "text")
    assert "Paris" in streamed, streamed
    assert final.usage.input_tokens > 0, final.usage
    seen["stream"] = streamed
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
