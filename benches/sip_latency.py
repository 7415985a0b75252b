#!/usr/bin/env python3
"""One benches/compare.sh run as a result line: "LABEL ok failed p50_us p99_us under_10ms".

    sip_latency.py STAT_CSV PCAP UAC_PORT LABEL

ok, failed and the share of calls whose INVITE->200 took under 10 ms come from sipp's
statistics file (its millisecond buckets). INVITE->200 comes from a tcpdump capture of the
UAC's port (PCAP; empty: no capture, "nan"): per Call-ID, from the first INVITE the UAC sent to
the first 200 for that INVITE it received, with the capture's microsecond timestamps.
"""
import csv
import math
import struct
import sys


def sipp_counts(path):
    rows = list(csv.reader(open(path), delimiter=";"))
    head, last = rows[0], rows[-1]
    buckets = {k.split("_", 1)[1]: int(last[i]) for i, k in enumerate(head) if k.startswith("ResponseTimeRepartition1_")}
    total = sum(buckets.values())
    fast = sum(v for k, v in buckets.items() if k in ("<1", "<2", "<5", "<10"))
    under_10ms = fast / total if total else 0.0
    return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")]), under_10ms


def packets(path):
    """(time in us, source port, destination port, UDP payload) of each IPv4 UDP packet."""
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    link = struct.unpack("<I", data[20:24])[0]
    l2 = {1: 14, 0: 4, 113: 16}.get(link, 14)  # Ethernet, BSD loopback, Linux cooked
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        yield sec * 1e6 + (frac / 1000 if nano else frac), sport, dport, ip[ihl + 8:]


def call_id(payload):
    for line in payload.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"call-id", b"i"):
            return value.strip()
    return None


def invite_to_200(path, uac):
    sent, answered = {}, {}
    for ts, sport, dport, payload in packets(path):
        if sport == uac and payload.startswith(b"INVITE "):
            sent.setdefault(call_id(payload), ts)
        elif dport == uac and payload.startswith(b"SIP/2.0 200") and b" INVITE\r\n" in payload:
            answered.setdefault(call_id(payload), ts)
    return sorted(answered[c] - sent[c] for c in answered if c in sent)


def main():
    stat, pcap, uac, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    ok, failed, under_10ms = sipp_counts(stat)
    p50 = p99 = math.nan
    if pcap:
        lat = invite_to_200(pcap, uac)
        if lat:
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(label, ok, failed, *(("nan" if math.isnan(v) else round(v)) for v in (p50, p99)), f"{under_10ms:.4f}")


if __name__ == "__main__":
    main()
