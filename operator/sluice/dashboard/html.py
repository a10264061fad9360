"""The page frame (style, live-update script) and escaping. Every value a
user wrote (names, params, messages, logs) goes through ``esc``.
"""

from __future__ import annotations

import html

STATE_COLOURS = {
    "Succeeded": "#2e9d4f",
    "Failed": "#d64545",
    "Running": "#2f7fd8",
    "Retrying": "#e0a020",
    "Waiting": "#e0a020",
    "Pending": "#b8c0cc",
    "Skipped": "#e8c9f0",
    "Cancelled": "#8e6bbf",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def colour(state: str) -> str:
    return STATE_COLOURS.get(state, "#999999")


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px}
table{border-collapse:collapse;background:#fff}
th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#5b6573}
.sq{display:inline-block;width:12px;height:12px;margin-right:2px;border-radius:2px}
.state{padding:1px 6px;border-radius:3px;color:#fff;font-size:12px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:12px;margin:12px 0;overflow:auto}
h2{font-size:15px;margin:0 0 8px}
pre{background:#111;color:#ddd;padding:12px;overflow:auto;max-height:70vh;white-space:pre-wrap}
svg text{font:12px system-ui,sans-serif}
.task rect{stroke:#1d2430;stroke-width:0}
.task.selected rect{stroke-width:3}
.muted{color:#5b6573}
.live{font-size:12px;color:#5b6573}
"""

# Live pages: the server sends the page's <div id="live"> anew whenever what
# it shows changed; the browser swaps it in (keeping the scroll position).
_LIVE_SCRIPT = """
<script>
(function(){
  var live=document.getElementById('live'); if(!live||!live.dataset.src) return;
  var badge=document.getElementById('live-badge');
  var source=new EventSource(live.dataset.src);
  source.addEventListener('page',function(e){live.innerHTML=e.data; if(badge) badge.textContent='live';});
  source.addEventListener('gone',function(e){
    source.close(); live.textContent=e.data; if(badge) badge.textContent='';
  });
  source.onerror=function(){ if(badge) badge.textContent='reconnecting…'; };
})();
</script>
"""


def page(title: str, body: str, live_src: str | None = None) -> str:
    """A whole page; ``body`` goes in a live region fed from ``live_src``."""
    src = f' data-src="{esc(live_src)}"' if live_src else ""
    badge = '<span id="live-badge" class="live">connecting…</span>' if live_src else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{esc(title)} · Sluice</title><style>{_STYLE}</style></head><body>"
        f'<header><a href="/">Sluice</a><span>{esc(title)}</span>{badge}</header>'
        f'<main><div id="live"{src}>{body}</div></main>'
        f"{_LIVE_SCRIPT if live_src else ''}</body></html>"
    )


def state_badge(state: str, label: str | None = None) -> str:
    """A state in its colour; ``label`` says it in other words (a reason)."""
    return f'<span class="state" style="background:{colour(state)}">{esc(label or state)}</span>'
