"""The official openai Python SDK against Switchyard's Responses API.

Usage: openai_sdk.py BASE_URL MODEL [--no-tools] [--max-output-tokens N]

Runs, in order: responses.create (plain), responses.stream (the SDK checks the event
sequence as it builds the final response), responses.create with reasoning, and — unless
--no-tools — a function-tool round trip, once with the whole conversation sent back
(stateless clients) and once continuing with previous_response_id. Exits non-zero on the
first failure; prints one JSON line of what it saw. --max-output-tokens bounds the sampled
(reasoning) answer: a local model without a limit may write up to its whole context.
"""
import json
import os
import sys

from openai import OpenAI

QUESTION = "What is the capital of France?"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


def main() -> None:
    base, model = sys.argv[1], sys.argv[2]
    tools = "--no-tools" not in sys.argv
    limit = {}
    if "--max-output-tokens" in sys.argv:
        limit["max_output_tokens"] = int(sys.argv[sys.argv.index("--max-output-tokens") + 1])
    client = OpenAI(base_url=base + "/v1", api_key=os.environ["SWITCHYARD_TOKEN"], max_retries=0, timeout=300)
    seen = {}

    r = client.responses.create(model=model, input=QUESTION, temperature=0)
    assert r.status == "completed", r
    assert "Paris" in r.output_text, r.output_text
    seen["plain"] = r.output_text

    with client.responses.stream(model=model, input=QUESTION, temperature=0) as s:
        deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert final.status == "completed", final
    assert "".join(deltas) == final.output_text, (deltas, final.output_text)
    assert "Paris" in final.output_text
    seen["stream"] = final.output_text

    # Reasoning models sample as they must (Claude refuses a temperature with thinking),
    # so the answer is not pinned here.
    r = client.responses.create(model=model, input=QUESTION, reasoning={"effort": "low"}, **limit)
    if r.status == "incomplete":
        # Only the limit given here may cut it short, and then it says so.
        assert limit and r.incomplete_details.reason == "max_output_tokens", r
    else:
        assert r.status == "completed", r
    assert r.output_text, r
    seen["reasoning"] = r.output_text

    if tools:
        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        r1 = client.responses.create(model=model, input=ask, tools=[WEATHER])
        calls = [o for o in r1.output if o.type == "function_call"]
        assert calls, r1.output
        call = calls[0]
        assert call.name == "get_weather", call
        assert json.loads(call.arguments) == {"city": "Paris"}, call.arguments
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}
        # Stateless: the whole conversation goes back.
        history = ask + [o.model_dump(exclude_none=True) for o in r1.output] + [result]
        r2 = client.responses.create(model=model, input=history, tools=[WEATHER])
        assert "18C and sunny" in r2.output_text, r2.output_text
        # Stateful: only the result, continuing the stored response.
        r3 = client.responses.create(
            model=model, previous_response_id=r1.id, input=[result], tools=[WEATHER]
        )
        assert "18C and sunny" in r3.output_text, r3.output_text
        seen["tools"] = r3.output_text

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
