"""`rolecall chat`: role-play with a running rolecall server from the terminal, replies streamed as they come."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from rolecall.cli.chat_session import Character, ChatError, ChatSession, Reply

HELP = """commands: /regen  a new reply in place of the last one
          /undo   drop your last message and its reply
          /render show what the model would see next (prompt text and tokens)
          /save FILE  save the conversation (the playground imports it)
          /quit   leave (also Ctrl-D); Ctrl-C stops a reply"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("chat", help="role-play with a running rolecall server in the terminal")
    parser.add_argument(
        "--url",
        default=os.environ.get("ROLECALL_URL", "http://127.0.0.1:8000"),
        help="the server (default http://127.0.0.1:8000; ROLECALL_URL)",
    )
    parser.add_argument("--key", default=os.environ.get("ROLECALL_API_KEY", ""), help="API key (ROLECALL_API_KEY)")
    parser.add_argument("--model", default="MiniMax-M2.7", help="model name (default MiniMax-M2.7)")
    parser.add_argument("--character", metavar="CARD", type=Path, help="a character card: PNG or JSON (V1, V2, V3)")
    parser.add_argument("--persona", default="", help="who you play (sent as user_system)")
    parser.add_argument("--scene", default="", help="the scene (sent as group; replaces the card's scenario)")
    parser.add_argument("--user", default="", help="your name, for {{user}} in the card (default User)")
    parser.add_argument("--system", default="", help="the AI's character when no card is given")
    parser.add_argument("--max-tokens", type=int, default=300, help="longest reply, in tokens (default 300)")
    parser.set_defaults(run=run)


class Terminal:
    """Writes replies as they stream; thinking is dimmed when the output is a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.colour = out.isatty() and os.environ.get("NO_COLOR") is None
        self._last_kind = ""

    def style(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def piece(self, kind: str, text: str) -> None:
        if kind == "thinking":
            if self._last_kind != "thinking":
                self.out.write(self.style("2", "(thinking) "))
            self.out.write(self.style("2", text))
        else:
            if self._last_kind == "thinking":
                self.out.write("\n")
            self.out.write(text)
        self._last_kind = kind
        self.out.flush()

    def reply_started(self, name: str) -> None:
        self._last_kind = ""
        self.out.write(self.style("1;35", f"{name}: "))
        self.out.flush()

    def reply_ended(self, reply: Reply) -> None:
        usage = reply.usage
        cached = usage.get("cache_read_input_tokens", 0)
        line = f"[{usage.get('input_tokens', 0) + cached} in ({cached} cached), {usage.get('output_tokens', 0)} out"
        line += ", stopped]" if reply.stop_reason == "stopped" else "]"
        self.out.write("\n" + self.style("2", line) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    terminal = Terminal(sys.stdout)
    character = Character(system=args.system, user_name=args.user)
    session = ChatSession(args.url, args.key, args.model, args.max_tokens, character)
    try:
        if args.character is not None:
            session.import_card(args.character, args.user)
        if args.persona:
            session.character.persona = args.persona
        if args.scene:
            session.character.scene = args.scene
        return _converse(session, terminal)
    except ChatError as exc:
        print(f"rolecall chat: {exc}", file=sys.stderr)
        return 1
    finally:
        session.close()


def _converse(session: ChatSession, terminal: Terminal) -> int:
    name = session.character.name or "AI"
    terminal.say(terminal.style("2", f"Talking to {name} ({session.model}) at {session.url}. /help lists commands."))
    session.render()  # fails early, with a clear message, when the server is down or the key is wrong
    if greeting := session.start():
        terminal.say(terminal.style("1;35", f"{name}: ") + greeting)
    while True:
        try:
            line = input(terminal.style("1;34", "you> "))
        except EOFError:
            terminal.say("")
            return 0
        except KeyboardInterrupt:
            terminal.say("")
            continue
        if not line.strip():
            continue
        try:
            if _command(line.strip(), session, terminal, name) == "quit":
                return 0
        except ChatError as exc:
            terminal.say(terminal.style("31", f"error: {exc}"))


def _command(line: str, session: ChatSession, terminal: Terminal, name: str) -> str | None:
    command, _, argument = line.partition(" ")
    if command in ("/quit", "/exit"):
        return "quit"
    if command == "/help":
        terminal.say(HELP)
    elif command == "/regen":
        terminal.reply_started(name)
        terminal.reply_ended(session.regenerate(terminal.piece))
    elif command == "/undo":
        dropped = session.undo()
        terminal.say(terminal.style("2", f"(removed {dropped} message{'s' if dropped != 1 else ''})"))
    elif command == "/render":
        rendered = session.render(argument)
        shown = rendered["prompt"] if rendered["prompt"] is not None else json.dumps(rendered["turns"], indent=2)
        terminal.say(shown)
        terminal.say(
            terminal.style("2", f"[{rendered['input_tokens']} input tokens, served by {rendered['served_by']}]")
        )
    elif command == "/save":
        if not argument.strip():
            raise ChatError("say where: /save FILE")
        session.save(Path(argument.strip()).expanduser())
        terminal.say(terminal.style("2", f"(saved to {argument.strip()}; the playground's Import opens it)"))
    elif command.startswith("/"):
        raise ChatError(f"unknown command {command}; /help lists them")
    else:
        terminal.reply_started(name)
        terminal.reply_ended(session.say(line, terminal.piece))
    return None
