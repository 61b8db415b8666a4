"""The playground in a real headless Chromium (Debian's `chromium`, driven by Playwright) against the real
server and bundled model: card import (drop and file picker), two streamed turns, regenerate and swipes,
edit, the prompt view, usage, export, a wrong key, and that card or reply text never runs as HTML.

Screenshots of every step go to a folder under the test's tmp_path; its path is printed."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.support.cards import png_card, v2_card, v3_card

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS_SCRIPT = "<script>window.__pwned = 'script'</script>"
XSS_IMG = "<img src=x onerror=\"window.__pwned = 'img'\">"
# Counts text changes of the newest reply while the log says it is still busy (streaming).
WATCH_STREAM = """() => {
  window.__streamed = 0;
  const log = document.querySelector('[role=log]');
  new MutationObserver(() => {
    const replies = log.querySelectorAll('article.assistant .text');
    const last = replies[replies.length - 1];
    if (log.getAttribute('aria-busy') === 'true' && last && last.textContent) window.__streamed += 1;
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def page(real_url: str, tmp_path: Path) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make test` installs it with apt (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1360, "height": 860}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{real_url}/playground")
        yield page
        browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


class Shots:
    def __init__(self, page: object, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        print(f"\nplayground screenshots: {folder}")

    def take(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"))  # type: ignore[attr-defined]


def _drop_file(page, name: str, mime: str, content: bytes) -> None:
    """Drag-and-drop a file onto the character panel's drop zone, as a person would."""
    page.evaluate(
        """([name, mime, b64]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, {type: mime}));
          const zone = document.getElementById('drop-zone');
          zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
          zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        [name, mime, base64.b64encode(content).decode()],
    )


def _send_and_wait(page, text: str) -> None:
    page.evaluate(WATCH_STREAM)
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send", exact=True).click()
    _wait_idle(page)
    assert page.evaluate("window.__streamed") >= 2, "the reply should appear piece by piece while it streams"


def _wait_idle(page) -> None:
    page.wait_for_function("() => document.querySelector('[role=log]').getAttribute('aria-busy') === 'false'")


def test_playground_end_to_end(page, tmp_path: Path) -> None:
    shots = Shots(page, tmp_path / "playground-screenshots")
    log = page.get_by_role("log", name="Conversation")
    shots.take("loaded")

    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Tab")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#model option')].some(o => o.value === 'MiniMax-M2.7')"
    )
    page.select_option("#model", "MiniMax-M2.7")
    page.fill("#max-tokens", "40")
    page.fill("#user-name", "Tomas")

    # A V2 JSON card dropped on the panel, then a V3 PNG card through the file picker (it wins: newest import).
    _drop_file(page, "old.json", "application/json", json.dumps(v2_card(name="Dropped")).encode())
    page.wait_for_function("() => document.getElementById('char-name').value === 'Dropped'")
    hostile = v3_card(description=f"Mira. {XSS_SCRIPT}", first_mes=f"Evening, {{{{user}}}}. {XSS_IMG}", nickname="")
    page.set_input_files(
        "#card-file", {"name": "mira.png", "mimeType": "image/png", "buffer": png_card(hostile, "ccv3")}
    )
    page.wait_for_function("() => document.getElementById('char-name').value === 'Mira'")
    assert page.input_value("#scene") == "A stormy night at the Salt Lantern; Tomas comes in soaked."
    assert XSS_SCRIPT in page.input_value("#char-system")
    greeting = log.locator("article.assistant .text").first
    assert greeting.text_content() == f"Evening, Tomas. {XSS_IMG}"  # shown as text, not as an image
    assert log.locator("img, script").count() == 0
    shots.take("card-imported")

    _send_and_wait(page, "Evening, Mira. Is there any stew left?")
    replies = log.locator("article.assistant")
    assert replies.count() == 2 and replies.nth(1).locator(".text").text_content().strip()
    stats = replies.nth(1).locator(".stats").text_content()
    for part in ("input ", "cached ", "output ", "TTFT ", "tokens/s"):
        assert part in stats, stats
    shots.take("first-turn")

    _send_and_wait(page, "The harbour master is looking for me. Can I hide here?")
    assert replies.count() == 3
    shots.take("second-turn")

    page.evaluate(WATCH_STREAM)
    page.get_by_role("button", name="Regenerate").click()
    _wait_idle(page)
    last = replies.nth(2)
    assert last.locator(".swipe-count").text_content() == "2/2"
    last.get_by_role("button", name="Previous reply").click()
    assert replies.nth(2).locator(".swipe-count").text_content() == "1/2"
    shots.take("regenerated")

    page.get_by_role("button", name="Prompt").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    prompt = page.locator("#prompt-text").text_content()
    assert prompt.startswith("<|im_start|>system\nMira.")
    assert "Scene: A stormy night" in prompt and "The harbour master is looking for me" in prompt
    assert "input tokens" in page.locator("#prompt-summary").text_content()
    shots.take("prompt-view")
    dialog.get_by_role("button", name="Close").click()

    # Stop right after Send: the request is cancelled wherever it is, and the reply says so.
    page.fill("#max-tokens", "400")
    page.get_by_label("Message", exact=True).fill("Tell me the whole history of the Salt Lantern.")
    page.get_by_role("button", name="Send", exact=True).click()
    page.get_by_role("button", name="Stop").click()
    _wait_idle(page)
    assert replies.nth(3).locator(".text").text_content().endswith("[stopped]")
    replies.nth(3).get_by_role("button", name="Delete").click()
    log.locator("article.user").last.get_by_role("button", name="Delete").click()
    assert replies.count() == 3
    page.fill("#max-tokens", "40")

    # A reply edited to hold markup stays text; nothing on the page ran any of it.
    replies.nth(1).get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message 3").fill(f"Sit. {XSS_IMG} {XSS_SCRIPT}")
    replies.nth(1).get_by_role("button", name="Save").click()
    assert replies.nth(1).locator(".text").text_content() == f"Sit. {XSS_IMG} {XSS_SCRIPT}"
    assert log.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    shots.take("edited-markup-as-text")

    with page.expect_download() as download:
        page.get_by_role("button", name="Export V2 card").click()
    card = json.loads(Path(download.value.path()).read_text())
    assert card["spec"] == "chara_card_v2" and card["data"]["name"] == "Mira"
    assert card["data"]["first_mes"] == f"Evening, {{{{user}}}}. {XSS_IMG}"

    # Conversations survive a reload (localStorage); the key stays in this tab (sessionStorage).
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('[role=log] article').length === 5")
    assert page.get_by_label("API key").input_value() == API_KEY

    page.get_by_label("API key").fill("not-the-key")
    page.get_by_label("API key").press("Tab")
    page.get_by_label("Message", exact=True).fill("Hello?")
    page.get_by_role("button", name="Send", exact=True).click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    page.wait_for_function("() => document.getElementById('error').textContent.includes('refused')")
    assert "The API key was refused" in alert.text_content() and "API key" in alert.text_content()
    shots.take("wrong-key")
    assert page.evaluate("window.__pwned") is None
    assert len(list(shots.folder.glob("*.png"))) == shots.count


LORE_CASES = [
    ["Evening."],
    ["Is the HARBOUR MASTER here?"],
    ["stew?", "Sit.", "Thanks."],
    ["Harbour master!", "stew, please"],
    ["a ship in the STORM", "Oskar"],
    ["the ship sank", "oskar"],
]


def test_the_playground_and_rolecall_chat_apply_one_lorebook_rule(page) -> None:
    """playground/lorebook.js and rolecall/cli/lorebook.py fire the same entries on the same turns."""
    from rolecall.cli.lorebook import fired_entries, user_message_with_notes
    from tests.unit.test_cards import BOOK

    book = {
        **BOOK,
        "entries": [
            *BOOK["entries"],
            {"keys": ["ship"], "secondary_keys": ["storm"], "selective": True, "content": "A", "insertion_order": 5},
            {"keys": [], "constant": True, "content": "B", "insertion_order": 0},
            {"keys": ["Oskar"], "case_sensitive": True, "content": "C", "insertion_order": 9},
        ],
    }
    in_js = page.evaluate(
        """async ([book, cases]) => {
          const lore = await import('/playground/lorebook.js');
          return cases.map((recent) => lore.userMessageWithNotes('Hi', lore.firedEntries(book, recent), 'Stay.'));
        }""",
        [book, LORE_CASES],
    )
    in_python = [user_message_with_notes("Hi", fired_entries(book, recent), "Stay.") for recent in LORE_CASES]
    assert in_js == in_python
    assert len(set(in_python)) > 3  # the cases tell the entries apart


def test_api_errors_are_worded_for_people(page) -> None:
    """The sentences the page shows for the API's refusals (the wrong key is seen end to end above)."""
    worded = page.evaluate(
        """async () => {
          const api = await import('/playground/api.js');
          return [api.failureText(529, 'Overloaded: all engine slots are busy (1002)', '3'),
                  api.failureText(429, 'rate limit (1002)', '12'),
                  api.failureText(400, 'max_tokens: Field required (2013)', null)];
        }"""
    )
    assert worded == [
        "The server is busy (overloaded): Overloaded: all engine slots are busy (1002). Try again in 3 s.",
        "Too many requests for this key: rate limit (1002). Try again in 12 s.",
        "The request was refused: max_tokens: Field required (2013)",
    ]
