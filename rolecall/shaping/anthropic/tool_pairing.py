"""Tool pairing (wire contract §5.4), with Anthropic's exact wording: every `tool_use` is answered by a
`tool_result` in the next user turn, every `tool_result` answers a `tool_use` of the turn before, and ids
are unique. Indices name the client's original `messages[i]` / `content[j]`."""

from __future__ import annotations

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.blocks import ToolResultBlock, ToolUseBlock
from rolecall.protocol.anthropic.requests import Message

# Messages that take part in pairing; role-play and inline system messages do not count as turns.
_TURN_ROLE = {"user": "user", "ctx": "user", "msg": "user", "assistant": "assistant"}

Run = tuple[str, list[tuple[int, Message]]]


def check_tool_pairing(messages: list[Message]) -> None:
    runs = _turn_runs(messages)
    seen: set[str] = set()
    offered: set[str] = set()  # tool_use ids of the assistant turn just before (turns alternate)
    for r, (role, run) in enumerate(runs):
        if role == "assistant":
            uses = _tool_uses(run, seen)
            offered = {tool_id for tool_id, _ in uses}
            answered = _result_ids(runs[r + 1][1]) if r + 1 < len(runs) else set()
            missing = [tool_id for tool_id, _ in uses if tool_id not in answered]
            if missing:
                i = next(i for tool_id, i in uses if tool_id == missing[0])
                raise InvalidRequest(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                    "in the next message."
                )
        else:
            for i, message in run:
                for j, block in enumerate(message.content):
                    if isinstance(block, ToolResultBlock) and block.tool_use_id not in offered:
                        raise InvalidRequest(
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{block.tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` "
                            "block in the previous message."
                        )
            offered = set()


def _turn_runs(messages: list[Message]) -> list[Run]:
    """Consecutive user or assistant messages form one turn, as they are merged for the model."""
    runs: list[Run] = []
    for i, message in enumerate(messages):
        role = _TURN_ROLE.get(message.role)
        if role is None:
            continue
        if runs and runs[-1][0] == role:
            runs[-1][1].append((i, message))
        else:
            runs.append((role, [(i, message)]))
    return runs


def _tool_uses(run: list[tuple[int, Message]], seen: set[str]) -> list[tuple[str, int]]:
    """(id, message index) of each tool_use in a turn; an id already `seen` in the request is refused."""
    uses = []
    for i, message in run:
        for j, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock):
                if block.id in seen:
                    raise InvalidRequest(f"messages.{i}.content.{j}: `tool_use` ids must be unique")
                seen.add(block.id)
                uses.append((block.id, i))
    return uses


def _result_ids(run: list[tuple[int, Message]]) -> set[str]:
    return {block.tool_use_id for _, message in run for block in message.content if isinstance(block, ToolResultBlock)}
