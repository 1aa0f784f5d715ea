//! The few HTML pages the gateway itself shows: the landing page with its "new session"
//! button, "waking up" (which retries by itself), and the error pages. Plain HTML with one
//! inline style and, on the landing page, one inline script; the Content-Security-Policy the
//! gateway sends with them allows exactly that.

/// `Content-Security-Policy` for the gateway's own pages.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:15vh auto;padding:0 1em;color:#1d2330}h1{font-size:1.6em}button{font:inherit;padding:.5em 1.2em;border-radius:6px;border:0;background:#3451d1;color:#fff;cursor:pointer}code{background:#eef;padding:0 .3em}";

fn page(title: &str, head_extra: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">{head_extra}<title>{title} · Huddle</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The landing page: one button that creates a session and opens it as its owner.
pub fn landing() -> String {
    page(
        "Huddle",
        "",
        "<h1>Huddle</h1><p>Code together: one editor, one terminal, live cursors, for up to ten people.</p>\
         <p><button id=new>New session</button></p><p id=msg role=status></p>\
         <script>document.getElementById('new').onclick=async()=>{const m=document.getElementById('msg');m.textContent='Starting…';\
         try{const r=await fetch('/api/sessions',{method:'POST',headers:{'content-type':'application/json'},body:'{}'});\
         const j=await r.json();if(!r.ok)throw new Error(j.message||r.status);location.href=j.ownerLink;}\
         catch(e){m.textContent='Could not create a session: '+e.message;}};</script>",
    )
}

/// Shown while a session starts or wakes up; reloads itself every two seconds.
pub fn waking(what: &str) -> String {
    page(
        "Waking up",
        "<meta http-equiv=refresh content=2>",
        &format!(
            "<h1>Waking up…</h1><p>{}</p><p>This page reloads by itself.</p>",
            escape(what)
        ),
    )
}

/// An error page with a heading and one sentence.
pub fn error(title: &str, message: &str) -> String {
    page(
        title,
        "",
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_escaped() {
        let html = error("Not found", "<script>alert(1)</script>");
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(waking("a \"b\"").contains("a &quot;b&quot;"));
    }
}
