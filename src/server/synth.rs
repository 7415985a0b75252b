//! `callgate records generate`: synthetic calls through callgate's own proxy, compliance gate
//! and audit writer, in process and without sockets, the clock moved along so that the calls
//! spread over days as a call centre's do (17:00 to 24:00 UTC each day, a few calls in flight
//! at once). Sealed days are compressed in the background as in service; the generator does
//! not wait for it, so the newest sealed days may be left plain. What benchmarks of the records need: records written by the real writer, in the
//! millions, in minutes.

use crate::clock::{Clock, OffsetClock};
use crate::config::Config;
use crate::sip::peer::{Outgoing, Peer};
use crate::sip::proxy::Proxy;
use bytes::Bytes;
use chrono::{Duration, NaiveDate, Utc};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// What to generate.
pub struct Plan {
    pub calls: u64,
    /// The first day (UTC); the calls spread over `days` days from it.
    pub first_day: NaiveDate,
    pub days: u32,
    /// Called numbers: this many distinct ones (415 area code).
    pub numbers: u32,
    /// Every this many calls goes to a number on the national sample list (blocked).
    pub blocked_every: u64,
}

const DIALER: &str = "127.0.0.1:5070";
/// Calls in flight: each ends this many calls after it started.
const IN_FLIGHT: usize = 32;
/// Calls are placed from 17:00 UTC for 7 hours each day.
const DAY_OPENS_HOUR: i64 = 17;
const DAY_HOURS: i64 = 7;

/// A call answered and not yet ended: what its BYE needs.
struct Answered {
    call_id: String,
    tag: String,
    /// The 200's To (with the carrier's tag), Record-Route (as Route) and Contact.
    to: String,
    routes: Vec<String>,
    contact: String,
}

/// Generate `plan.calls` calls into the audit directory of `cfg`. Returns the calls placed.
pub fn generate(mut cfg: Config, plan: &Plan) -> anyhow::Result<u64> {
    cfg.sip.listen = "127.0.0.1:0".parse()?;
    cfg.admin.listen = "127.0.0.1:0".parse()?;
    cfg.tls.listen = None;
    cfg.calls.max_open = cfg.calls.max_open.max(IN_FLIGHT * 4);
    // The generated dialer is let in, unthrottled (its calls come faster than any real
    // time would allow), and the carrier is the configured upstream alone.
    cfg.dialers.allow = vec!["127.0.0.1/32".parse()?];
    cfg.dialers.max_calls_per_second = 0;
    cfg.upstream.sources.clear();
    // The log alone: `records reindex` builds the index from it (and is measured doing so).
    cfg.records.index = false;
    anyhow::ensure!(
        plan.numbers <= 8_000_000,
        "--numbers {}: at most 8,000,000 (415 200 0000 to 415 999 9999)",
        plan.numbers
    );
    let clock = Arc::new(OffsetClock::default());
    let start = plan.first_day.and_hms_opt(DAY_OPENS_HOUR as u32, 0, 0);
    let start = start
        .ok_or_else(|| anyhow::anyhow!("no such day"))?
        .and_utc();
    clock.advance(start - Utc::now());
    let (upstream, _) = super::resolve_upstream(&cfg)?;
    let built = super::build(cfg, clock.clone())?;
    let mut g = Generator {
        proxy: built.app.proxy.clone(),
        upstream,
        dialer: DIALER.parse()?,
        out: Vec::new(),
        answered: VecDeque::new(),
    };
    let per_day = plan.calls.div_ceil(u64::from(plan.days.max(1))).max(1);
    for i in 0..plan.calls {
        if i > 0 && i % per_day == 0 {
            // The day's last calls end before it does.
            while !g.answered.is_empty() {
                g.hang_up();
            }
        }
        // Each call's time is set, not stepped: generation taking real time moves nothing.
        let (day, k) = ((i / per_day) as i64, (i % per_day) as i64);
        let at = start
            + Duration::days(day)
            + Duration::milliseconds(k * DAY_HOURS * 3_600_000 / per_day as i64);
        clock.advance(at - clock.now());
        let number = match plan.blocked_every > 0 && i % plan.blocked_every == 0 {
            true => "2125550143".to_string(),
            false => format!(
                "415{:07}",
                2_000_000 + (i * 7919) % u64::from(plan.numbers.max(1))
            ),
        };
        g.place(i, &number);
        if g.answered.len() > IN_FLIGHT {
            g.hang_up();
        }
        if i % 10_000 == 0 {
            g.proxy.sweep(&mut g.out);
            g.out.clear();
        }
    }
    while !g.answered.is_empty() {
        g.hang_up();
    }
    built.app.audit.flush();
    built.writer.shutdown();
    Ok(plan.calls)
}

struct Generator {
    proxy: Arc<Proxy>,
    upstream: SocketAddr,
    dialer: SocketAddr,
    out: Vec<Outgoing>,
    answered: VecDeque<Answered>,
}

/// The value of the first header `name` of a message, if any.
fn header<'a>(msg: &'a str, name: &'a str) -> Option<&'a str> {
    headers(msg, name).next()
}

fn headers<'a>(msg: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(move |l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// The carrier's answer to a request it received: its Vias, From, Call-ID, CSeq and
/// Record-Route, To with the carrier's tag, and a Contact.
fn reply(req: &str, status: &str, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for l in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => out += &format!("{l}\r\n"),
            "to" if !l.contains("tag=") => out += &format!("{l};tag=carrier\r\n"),
            "to" => out += &format!("{l}\r\n"),
            _ => {}
        }
    }
    out + &format!("Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n")
}

impl Generator {
    /// Feed one message from `src`; what callgate sent to the carrier, if anything.
    fn feed(&mut self, msg: String, src: SocketAddr) -> Option<String> {
        self.out.clear();
        let from = match src == self.upstream {
            true => Peer::Udp(self.upstream),
            false => Peer::Udp(src),
        };
        self.proxy.handle(Bytes::from(msg), from, &mut self.out);
        self.out
            .iter()
            .find(|o| o.to_upstream)
            .map(|o| String::from_utf8_lossy(&o.data).into_owned())
    }

    /// An INVITE, and the carrier's 200 and the dialer's ACK when callgate forwards it (the
    /// dialer's ACK of callgate's 603 when it does not).
    fn place(&mut self, i: u64, number: &str) {
        let (d, call_id, tag) = (self.dialer, format!("g{i}@gen"), format!("d{i}"));
        let invite = format!(
            "INVITE sip:{number}@callgate SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK-g{i}\r\nFrom: \"Dialer\" <sip:+12025550100@{d}>;tag={tag}\r\nTo: <sip:{number}@callgate>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:dialer@{d}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let Some(forwarded) = self.feed(invite, d) else {
            let to = self.out.iter().find_map(|o| {
                let text = String::from_utf8_lossy(&o.data).into_owned();
                header(&text, "To").map(str::to_string)
            });
            let to = to.unwrap_or_else(|| format!("<sip:{number}@callgate>"));
            let ack = format!(
                "ACK sip:{number}@callgate SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK-g{i}\r\nFrom: \"Dialer\" <sip:+12025550100@{d}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            self.feed(ack, d);
            return;
        };
        let contact = format!("sip:carrier@{}", self.upstream);
        let ok = reply(&forwarded, "200 OK", &contact);
        self.feed(ok, self.upstream);
        let answer = self
            .out
            .first()
            .map(|o| String::from_utf8_lossy(&o.data).into_owned());
        let answer = answer.unwrap_or_default();
        let to = header(&answer, "To").unwrap_or_default().to_string();
        let routes: Vec<String> = headers(&answer, "Record-Route")
            .map(str::to_string)
            .collect();
        let call = Answered {
            call_id,
            tag,
            to,
            routes,
            contact,
        };
        let ack = self.in_dialog(&call, "ACK", 1);
        self.feed(ack, d);
        self.answered.push_back(call);
    }

    /// A request of the dialog from the dialer (its Route set from the 200's Record-Route).
    fn in_dialog(&self, c: &Answered, method: &str, cseq: u32) -> String {
        let d = self.dialer;
        let routes: String = c.routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK-{method}-{}\r\n{routes}From: \"Dialer\" <sip:+12025550100@{d}>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            c.contact, c.call_id, c.tag, c.to, c.call_id
        )
    }

    /// The oldest call in flight ends: the dialer's BYE and the carrier's 200.
    fn hang_up(&mut self) {
        let Some(call) = self.answered.pop_front() else {
            return;
        };
        let bye = self.in_dialog(&call, "BYE", 2);
        if let Some(forwarded) = self.feed(bye, self.dialer) {
            let ok = reply(&forwarded, "200 OK", &call.contact);
            self.feed(ok, self.upstream);
        }
    }
}
