//! HTML building blocks: escaping, the page frame, the style sheet, and how times and
//! ages read.
//!
//! Owns: [`esc`] (every value that did not come from this source file goes through it:
//! `&`, `<`, `>`, `"` and `'` become entities, so text is inert in element content and in
//! quoted attributes), [`frame`] (head, header with the operator and the logout form,
//! footer), [`STYLE`], [`ago`], [`span`], [`when`].
//! Does not: decide what a page says (`pages`).
//! Invariants: markup is only ever written as string literals of this crate; the frame
//! loads no script and nothing from another origin (the CSP says so too).
//! Limitations: none.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Duration, Utc};

use truenas_agent::central::report::format_time;

/// Text made safe for HTML content and quoted attribute values.
#[derive(Clone, Copy)]
pub struct Esc<'a>(&'a str);

/// Escapes `text`.
pub fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A duration as people read it: `45s`, `12m`, `3h 12m`, `2d 4h`.
pub fn span(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `3h 12m ago` (or `in 5m` for a time ahead of `now`).
pub fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    if at > now {
        format!("in {}", span(at - now))
    } else {
        format!("{} ago", span(now - at))
    }
}

/// `2026-11-23 10:00:00Z (3h 12m ago)`.
pub fn when(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    format!("{} ({})", format_time(&at).replace('T', " "), ago(now, at))
}

/// The path of the style sheet.
pub const STYLE_PATH: &str = "/static/dashboard.css";

/// The whole page around `body`. `operator` and `csrf`: the header's name and logout
/// form (`None`: the login page).
pub fn frame(
    title: &str,
    operator: Option<(&str, &str)>,
    now: DateTime<Utc>,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · TrueNAS central</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\n<body>\
         <header><a class=\"brand\" href=\"/\">TrueNAS central</a>",
        esc(title)
    );
    if let Some((name, csrf)) = operator {
        let _ = write!(
            out,
            "<span class=\"who\">operator <b id=\"operator\">{}</b></span>\
             <form class=\"logout\" method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form>",
            esc(name),
            esc(csrf)
        );
    }
    let _ = write!(
        out,
        "</header>\n<main>{body}</main>\n<footer>as of {} · server-rendered, no script</footer>\
         </body></html>\n",
        esc(&format_time(&now).replace('T', " "))
    );
    out
}

/// The style sheet (served from [`STYLE_PATH`]; no inline styles, so the CSP can forbid
/// them).
pub const STYLE: &str = "\
:root{--bad:#b3261e;--warn:#9a5b00;--info:#33507a;--ok:#1e6b34;--line:#d9dee5;--muted:#5d6673}\
*{box-sizing:border-box}\
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;background:#f5f7fa}\
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.2rem;background:#1f2d3d;color:#fff}\
header a.brand{color:#fff;font-weight:600;text-decoration:none;margin-right:auto}\
header .who{opacity:.85}header form{margin:0}\
header button{background:transparent;color:#fff;border:1px solid #8aa0b8;border-radius:4px;padding:.2rem .6rem;cursor:pointer}\
main{padding:1rem 1.2rem;max-width:1400px}\
footer{padding:.6rem 1.2rem;color:var(--muted);font-size:12px}\
h1{font-size:20px;margin:.2rem 0 .6rem}h2{font-size:16px;margin:1.4rem 0 .4rem}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}\
th,td{text-align:left;padding:.35rem .55rem;border-bottom:1px solid var(--line);vertical-align:top}\
th{background:#eef1f5;font-weight:600;font-size:12px;color:#3a4350}\
tr.verdict-problem td:first-child{border-left:4px solid var(--bad)}\
tr.verdict-unknown td:first-child{border-left:4px solid var(--warn)}\
tr.verdict-notice td:first-child{border-left:4px solid var(--info)}\
tr.verdict-healthy td:first-child{border-left:4px solid var(--ok)}\
.badge{display:inline-block;border-radius:3px;padding:0 .4rem;margin:0 .2rem .15rem 0;font-size:12px;color:#fff;background:var(--info)}\
.badge.problem{background:var(--bad)}.badge.unknown{background:var(--warn)}.badge.healthy{background:var(--ok)}\
.pool{display:inline-block;margin-right:.8rem;white-space:nowrap}.pool.bad{color:var(--bad);font-weight:600}\
.muted{color:var(--muted)}.error{background:#fde8e6;border:1px solid var(--bad);padding:.5rem .8rem;border-radius:4px}\
.done{background:#e6f4ea;border:1px solid var(--ok);padding:.5rem .8rem;border-radius:4px}\
.summary{margin:.2rem 0 .8rem}.filter{margin:.4rem 0 .8rem;display:flex;gap:.6rem;align-items:center}\
.actions{display:flex;gap:1rem;flex-wrap:wrap;margin:.4rem 0}.actions form{background:#fff;border:1px solid var(--line);padding:.5rem .7rem;border-radius:4px}\
button,select,input{font:inherit}\
pre{background:#fff;border:1px solid var(--line);padding:.6rem;overflow:auto;max-height:32rem}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;background:#fff;border:1px solid var(--line);padding:.6rem .8rem;margin:0}\
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}\
.login{max-width:28rem;margin:3rem auto;background:#fff;border:1px solid var(--line);padding:1.2rem 1.4rem;border-radius:6px}\
.login input{width:100%;margin:.4rem 0 .8rem;padding:.35rem}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(Duration::seconds(5)), "5s");
        assert_eq!(span(Duration::seconds(125)), "2m");
        assert_eq!(span(Duration::seconds(3 * 3600 + 720)), "3h 12m");
        assert_eq!(span(Duration::seconds(2 * 86_400 + 4 * 3600 + 5)), "2d 4h");
        assert_eq!(span(Duration::seconds(-5)), "0s");
        let t = DateTime::UNIX_EPOCH;
        assert_eq!(ago(t + Duration::minutes(3), t), "3m ago");
        assert_eq!(ago(t, t + Duration::minutes(3)), "in 3m");
    }
}
