"""A link in untrusted Markdown (issue 15): a URL react-markdown would refuse used to become `href=""`, which
reloads the page; now it is shown as text with its URL and has nothing to follow (maestro_ui/components/untrusted.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from maestro_ui.components.untrusted import DISARMED, URL_TRANSFORM, untrusted_markdown

SAFE = ["https://example.com/a?b=c#d", "http://x.test", "mailto:sam@example.com", "/rooms/1", "#decision", "page?x=a:b"]
UNSAFE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>x</script>",
    "vbscript:msgbox",
    "file:///etc/passwd",
]


def _transform(urls: list[str]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = f"const t = {URL_TRANSFORM}; console.log(JSON.stringify({json.dumps(urls)}.map(t)));"
    return json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)


def test_safe_urls_pass_unchanged():
    assert _transform(SAFE) == SAFE


def test_unsafe_urls_are_marked_not_emptied():
    assert _transform(UNSAFE) == [DISARMED + u for u in UNSAFE]


def _link_renderer() -> str:
    markdown = untrusted_markdown("[x](javascript:alert(1))")
    inner = markdown.children[0]
    assert "urlTransform:" + URL_TRANSFORM in str(markdown)  # the transform reaches ReactMarkdown itself
    code = "".join(inner._get_all_custom_code())
    start = code.index('["a"]')
    return code[start : code.index('["code"]', start)]


def test_a_disarmed_link_has_nothing_to_follow():
    renderer = _link_renderer()
    disarmed = renderer[renderer.index("md-link-disarmed") : renderer.index("md-link-url")]
    assert "href" not in disarmed and "to:" not in disarmed and "onClick" not in disarmed
    assert "link not opened" in renderer
    assert "'maestro-disarmed:'" in renderer and "!props?.href" in renderer  # an empty href is disarmed too


def test_a_safe_link_opens_without_the_referrer():
    renderer = _link_renderer()
    assert 'rel:"noopener noreferrer nofollow"' in renderer and 'target:"_blank"' in renderer
