"""S7Session: framing, COTP reassembly, pairing, values, caps, resynchronisation, probe."""

from __future__ import annotations

import struct

import pytest

from interlock.protocols.base import Direction, OpClass, Operation, Probe
from interlock.protocols.s7comm import PROTOCOL, S7Session, probe
from interlock.protocols.s7comm import codec as c
from interlock.protocols.s7comm.cotp import ConnectionRequest, Data, build_tpkt
from interlock.protocols.s7comm.fields import Area, Function, Reason, Rosctr, TransportSize
from interlock.protocols.s7comm.session import MAX_SEGMENTS, MAX_TRANSACTIONS


def tpkt(pdu: bytes, eot: bool = True) -> bytes:
    return build_tpkt(Data(pdu, eot=eot))


def frame(value: c.S7Pdu) -> bytes:
    return tpkt(c.build(value))


def one(ops: list[Operation]) -> Operation:
    assert len(ops) == 1, ops
    return ops[0]


REAL_DB1_DBD4 = c.S7AnyItem(TransportSize.REAL, 2, 1, Area.DB, 4 * 8)
BYTE_M0 = c.S7AnyItem(TransportSize.BYTE, 3, 0, Area.FLAGS, 0)


def test_read_pairs_items_and_decodes_values() -> None:
    s = S7Session()
    job = one(s.feed(frame(c.ReadVarRequest(7, (REAL_DB1_DBD4, BYTE_M0))), True))
    assert job.direction is Direction.REQUEST and job.op_class is OpClass.READ
    assert (job.function_code, job.function, job.transaction) == (4, "read_var", 7)
    assert (job.address, job.count, job.object, job.values) == (4, 2, "DB", None)
    assert job.detail is not None
    assert job.detail["items"][0] == {"area": "DB", "db": 1, "byte": 4, "bit": 0,
                                      "size": "REAL", "length": 2}  # fmt: skip
    reals = struct.pack(">ff", 1.5, -2.25)
    resp = c.ReadVarResponse(7, (c.DataItem(0xFF, 0x07, 8, reals),
                                 c.DataItem(0xFF, 0x04, 24, b"\x01\x02\x03")))  # fmt: skip
    op = one(s.feed(frame(resp), False))
    assert op.direction is Direction.RESPONSE and op.op_class is OpClass.READ
    assert (op.address, op.count, op.object, op.status) == (4, 2, "DB", None)
    assert op.values == (1.5, -2.25)  # REAL items give numbers, BYTE items stay hex
    assert op.detail is not None
    assert op.detail["items"][1]["data"] == "010203"
    assert op.detail["items"][1]["area"] == "M"


def test_unpaired_response_still_decodes() -> None:
    s = S7Session()
    op = one(s.feed(frame(c.ReadVarResponse(9, (c.DataItem(0x0A, 0, 0, b""),))), False))
    assert (op.function, op.count, op.address, op.status) == ("read_var", 1, None,
                                                              "OBJECT_DOES_NOT_EXIST")


def test_memo_gives_the_same_operations_as_parse() -> None:
    words = c.S7AnyItem(TransportSize.INT, 2, 3, Area.DB, 0)
    jobs = [c.WriteVarRequest(r, (words,), (c.DataItem(0, 0x04, 32, struct.pack(">hh", r, -r)),))
            for r in range(1, 4)]  # fmt: skip
    warm = S7Session()
    ops = [one(warm.feed(frame(j), True)) for j in jobs]  # the 2nd and 3rd come from the memo
    cold = [one(S7Session().feed(frame(j), True)) for j in jobs]
    assert ops == cold
    assert [op.values for op in ops] == [(1.0, -1.0), (2.0, -2.0), (3.0, -3.0)]
    # a memo hit with a broken data part is judged by parse()
    bad = bytearray(c.build(jobs[0]))
    bad[-5] = 0xFF  # data item length now runs past the end
    assert one(warm.feed(tpkt(bytes(bad)), True)).malformed == Reason.BAD_DATA_ITEM


def test_repeated_read_answers_match_a_fresh_parse() -> None:
    reals = struct.pack(">ff", 1.5, 2.5)
    warm = S7Session()
    ops = []
    for ref, item in ((1, REAL_DB1_DBD4), (2, REAL_DB1_DBD4), (3, BYTE_M0), (4, REAL_DB1_DBD4)):
        warm.feed(frame(c.ReadVarRequest(ref, (item,))), True)
        answer = frame(c.ReadVarResponse(ref, (c.DataItem(0xFF, 0x07, 8, reals),)))
        ops.append(one(warm.feed(answer, False)))
    cold = S7Session()
    cold.feed(frame(c.ReadVarRequest(4, (REAL_DB1_DBD4,))), True)
    assert ops[3] == one(cold.feed(frame(c.ReadVarResponse(4, (c.DataItem(0xFF, 0x07, 8, reals),))),
                                   False))  # fmt: skip
    assert [op.transaction for op in ops] == [1, 2, 3, 4]
    assert [op.values for op in ops] == [(1.5, 2.5), (1.5, 2.5), None, (1.5, 2.5)]
    assert [op.object for op in ops] == ["DB", "DB", "M", "DB"]


def test_repeated_write_answers_pair_with_their_own_jobs() -> None:
    s = S7Session()
    ops = []
    for ref, item in ((1, BYTE_M0), (2, REAL_DB1_DBD4)):
        data = c.DataItem(0, 0x04 if item is BYTE_M0 else 0x07, 24 if item is BYTE_M0 else 8,
                          b"\x00" * (3 if item is BYTE_M0 else 8))  # fmt: skip
        s.feed(frame(c.WriteVarRequest(ref, (item,), (data,))), True)
        ops.append(one(s.feed(frame(c.WriteVarResponse(ref, (0x05,))), False)))
    assert [(op.transaction, op.object, op.status) for op in ops] == [
        (1, "M", "INVALID_ADDRESS"), (2, "DB", "INVALID_ADDRESS")]


def test_write_response_reports_first_failing_item() -> None:
    s = S7Session()
    items = (BYTE_M0, c.S7AnyItem(TransportSize.TIMER, 1, 0, Area.TIMER, 3))
    data = (c.DataItem(0, 0x04, 24, b"abc"), c.DataItem(0, 0x09, 2, b"\x00\x10"))
    s.feed(frame(c.WriteVarRequest(2, items, data)), True)
    op = one(s.feed(frame(c.WriteVarResponse(2, (0xFF, 0x03))), False))
    assert (op.op_class, op.status, op.count, op.object) == (OpClass.WRITE, "ACCESS_NOT_ALLOWED",
                                                             2, "M")  # fmt: skip
    assert op.detail is not None and op.detail["items"][1]["number"] == 3


def test_ack_with_error_takes_the_jobs_function() -> None:
    # s7ident.pcap: start upload of SDB0 refused with 0xd241
    s = S7Session()
    s.feed(frame(c.BlockControlJob(Function.START_UPLOAD, 0x600, filename="_0B00000A")), True)
    op = one(s.feed(frame(c.Ack(0x600, 0xD2, 0x41)), False))
    assert (op.function, op.op_class, op.object) == ("start_upload", OpClass.FILE, "SDB0")
    assert op.status == "FUNCTION_NOT_PERMITTED_IN_PROTECTION_LEVEL"


def test_upload_id_names_the_block_of_later_uploads() -> None:
    s = S7Session()
    s.feed(frame(c.BlockControlJob(Function.START_UPLOAD, 1, filename="_0800001A")), True)
    s.feed(frame(c.BlockControlAckData(Function.START_UPLOAD, 1, 0, 0x0100, 42, "0000216")), False)
    up = one(s.feed(frame(c.BlockControlJob(Function.UPLOAD, 2, upload_id=42)), True))
    assert (up.object, up.op_class) == ("OB1", OpClass.FILE)
    data = one(s.feed(frame(c.BlockControlAckData(Function.UPLOAD, 2, 0, data=b"x" * 9)), False))
    assert data.object == "OB1" and data.detail == {"rosctr": "ack_data", "function_status": 0,
                                                    "data_length": 9}  # fmt: skip


def test_download_block_job_comes_from_the_plc() -> None:
    s = S7Session()
    op = one(s.feed(frame(c.BlockControlJob(Function.DOWNLOAD_BLOCK, 5, filename="_0A00001P")),
                    False))  # fmt: skip
    assert op.direction is Direction.RESPONSE  # who sent it, not what ROSCTR says
    assert (op.function, op.op_class, op.object) == ("download_block", OpClass.CONTROL, "DB1")


@pytest.mark.parametrize(
    ("value", "op_class", "function", "obj"),
    [
        (c.PlcStop(1), OpClass.CONTROL, "plc_stop", "P_PROGRAM"),
        (c.PiService(1, "_INSE", b"\x01\x000A00001P"), OpClass.CONTROL, "pi_service", "_INSE"),
        (c.SetupCommunication(Rosctr.JOB, 1, 1, 1, 480), OpClass.SESSION,
         "setup_communication", None),
        (c.Userdata(1, 4, 4, 1, data=b"\x00\x11\x00\x00", return_code=0xFF, transport_size=9),
         OpClass.IDENTIFY, "userdata.cpu.read_szl", "SZL 0x0011"),
        (c.Userdata(1, 4, 4, 2), OpClass.DIAGNOSTIC, "userdata.cpu.message_service", None),
        (c.Userdata(1, 4, 3, 2, data=b"0E", return_code=0xFF, transport_size=9), OpClass.READ,
         "userdata.block.list_blocks_of_type", "FB"),
        (c.Userdata(1, 4, 7, 2), OpClass.CONTROL, "userdata.time.set_clock", None),
        (c.Userdata(1, 4, 1, 8), OpClass.WRITE, "userdata.programmer.modify_variable", None),
        (c.Userdata(1, 4, 1, 12), OpClass.CONTROL, "userdata.programmer.memory_reset", None),
        (c.Userdata(1, 4, 5, 1), OpClass.SESSION, "userdata.security.plc_password", None),
        (c.Userdata(0, 0, 0, 0, method=0), OpClass.MONITOR, "userdata.mode_transition.stop",
         None),
        (c.Userdata(0, 0, 4, 3), OpClass.MONITOR, "userdata.cpu.diagnostic_message", None),
        (c.Userdata(1, 4, 4, 0x77), OpClass.DIAGNOSTIC, "userdata.cpu.0x77", None),
        (c.CpuServices(1, b"\x01"), OpClass.OTHER, "cpu_services", None),
    ],
)
def test_operation_classes(
    value: c.S7Pdu, op_class: OpClass, function: str, obj: str | None
) -> None:
    op = one(S7Session().feed(frame(value), True))
    assert (op.op_class, op.function, op.object) == (op_class, function, obj)
    assert op.unit is None and op.protocol == "s7comm"


def test_cotp_connection_gives_rack_and_slot() -> None:
    # s7ident.pcap frame 4
    s = S7Session()
    op = one(s.feed(bytes.fromhex("0300001611e00000000100c0010ac1020100c2020302"), True))
    assert (op.function, op.op_class, op.function_code) == ("cotp_cr", OpClass.SESSION, None)
    assert op.detail is not None
    assert (op.detail["rack"], op.detail["slot"], op.detail["connection_type"]) == (0, 2,
                                                                                  "S7_BASIC")
    assert s.connection["dst_tsap"] == "0302"
    cc = one(s.feed(bytes.fromhex("0300001611d00001000100c0010ac1020100c2020302"), False))
    assert cc.function == "cotp_cc" and cc.direction is Direction.RESPONSE


def test_dt_segments_reassemble_until_eot() -> None:
    raw = c.build(c.ReadVarRequest(3, (BYTE_M0,) * 4))
    s = S7Session()
    assert s.feed(tpkt(raw[:5], eot=False) + tpkt(b"", eot=False), True) == []
    op = one(s.feed(tpkt(raw[5:]), True))
    assert op.count == 4 and op.transaction == 3


def test_reassembly_overflow_is_reported_and_dropped() -> None:
    s = S7Session()
    chunk = tpkt(b"\x00" * 60000, eot=False)
    assert s.feed(chunk, True) == []
    op = one(s.feed(chunk, True))
    assert op.malformed == Reason.REASSEMBLY_OVERFLOW and op.op_class is OpClass.MALFORMED
    assert len(s._seg[1]) <= MAX_SEGMENTS
    assert one(s.feed(frame(c.PlcStop(1)), True)).function == "plc_stop"  # fresh start


def test_lost_framing_reports_once_then_resynchronises() -> None:
    s = S7Session()
    good = frame(c.PlcStop(9))
    ops = s.feed(b"GET / HTTP/1.1\r\n", True)
    assert [op.malformed for op in ops] == [Reason.BAD_TPKT_VERSION]
    assert s.feed(b"Host: plc\r\n\r\n" * 50, True) == []  # still lost: no second report
    op = one(s.feed(b"junk" + good, True))
    assert op.function == "plc_stop" and op.transaction == 9
    assert one(s.feed(good, True)).function == "plc_stop"


def test_short_tpkt_length_is_reported() -> None:
    s = S7Session()
    ops = s.feed(b"\x03\x00\x00\x04" + frame(c.PlcStop(1)), True)
    assert [op.malformed for op in ops] == [Reason.BAD_TPKT_LENGTH, None]


def test_malformed_s7_pdu_keeps_what_is_readable() -> None:
    s = S7Session()
    raw = bytearray(c.build(c.ReadVarRequest(0x1234, (BYTE_M0,))))
    raw[12] = 0x13  # variable specification marker broken
    op = one(s.feed(tpkt(bytes(raw)), True))
    assert (op.op_class, op.malformed, op.function_code, op.transaction) == (
        OpClass.MALFORMED, Reason.BAD_ITEM, 4, 0x1234)


def test_open_transactions_are_capped() -> None:
    s = S7Session()
    stream = b"".join(frame(c.ReadVarRequest(r, (BYTE_M0,))) for r in range(2000))
    assert len(s.feed(stream, True)) == 2000
    assert len(s._pending) == MAX_TRANSACTIONS and s.evicted == 2000 - MAX_TRANSACTIONS
    late = one(s.feed(frame(c.ReadVarResponse(0, (c.DataItem(0xFF, 4, 8, b"\x01"),))), False))
    assert late.object is None  # its job was evicted
    kept = one(s.feed(frame(c.ReadVarResponse(1999, (c.DataItem(0xFF, 4, 8, b"\x01"),))), False))
    assert kept.object == "M"


SZL_FIRST = (
    "0300002102f080320700000200000800080001120411440100ff090004001c0000",
    "030000f702f080320700000200000c00da0001120812840102d5010000ff0900d6001c00000022000a"
    + "00" * 206,
    "0300002102f080320700000300000c00040001120812440102000000000a000000",
    "030000a702f080320700000300000c008a0001120812840102d5000000ff090086" + "00" * 134,
)


def test_fragmented_szl_answer() -> None:
    # snap7_s300_everything.pcapng frames 5-8 (records zeroed): SZL 0x001c in two fragments
    s = S7Session()
    ops = [one(s.feed(bytes.fromhex(h), i % 2 == 0)) for i, h in enumerate(SZL_FIRST)]
    assert [op.object for op in ops] == ["SZL 0x001c"] * 4
    assert ops[1].count == 10 and ops[1].detail is not None
    assert ops[1].detail["last_data_unit"] is False
    assert ops[3].detail is not None
    assert ops[3].detail["continuation"] is True and ops[3].detail["szl_id"] == 0x1C
    assert ops[1].detail["records"] == "00" * 206 and len(ops[3].detail["records"]) == 2 * 134
    assert all(op.op_class is OpClass.IDENTIFY for op in ops)


CYCLIC = (
    "030000a502f0803207000000010008008c0001120411420100ff090088000b0101120a10040001012c8400"
    "0020120a1004000100c884000000120a10040001012c84000000120a10040001012c84000010120a1004000100"
    "c884000038120a10040001012c84000030120a1004000100c884000018120a1004000100c884000010120a10"
    "04000100c884000050120a10040001012c84000040120a1004000100c884000028",
    "0300006502f080320700000001000c0048000112081282010200000000ff090044000bff0400103000ff0400"
    "100060ff0400103000ff0400103000ff0400100007ff0400100000ff040010e000ff04001000e0ff040010e0"
    "00ff0400100000ff040010004b",
    "0300006502f080320700000000000c0048000112081202010200000000ff090044000bff0400103001ff0400"
    "100060ff0400103000ff0400103000ff0400100007ff0400100000ff040010e000ff04001000e0ff040010e0"
    "00ff0400100000ff040010004b",
    "0300001f02f080320700000001000800060001120411420400ff0900020102",
)


def test_cyclic_subscription_values_and_unsubscribe() -> None:
    # 2-S7comm-VarService-CyclicData-1s.pcap frames 17, 25, 125 (one word changed), 542
    s = S7Session()
    sub = one(s.feed(bytes.fromhex(CYCLIC[0]), True))
    assert (sub.op_class, sub.function, sub.count, sub.object, sub.address) == (
        OpClass.READ, "userdata.cyclic.cyclic_transfer", 11, "DB", 4)
    assert sub.detail is not None and sub.detail["interval_ms"] == 1000
    answer = one(s.feed(bytes.fromhex(CYCLIC[1]), False))
    assert answer.values is not None and answer.values[:2] == (0x3000, 0x0060)
    push = one(s.feed(bytes.fromhex(CYCLIC[2]), False))
    assert push.op_class is OpClass.MONITOR and push.direction is Direction.RESPONSE
    assert push.values is not None and push.values[0] == 0x3001 and len(push.values) == 11
    assert push.detail is not None and push.detail["items"][0]["db"] == 300
    assert one(s.feed(bytes.fromhex(CYCLIC[3]), True)).function == "userdata.cyclic.unsubscribe"
    after = one(s.feed(bytes.fromhex(CYCLIC[2]), False))
    assert after.values is None and after.object is None  # the job is gone


def test_broken_cyclic_subscription_is_malformed() -> None:
    raw = bytearray(bytes.fromhex(CYCLIC[0]))
    raw[33] = 0x13  # first item's variable specification marker
    op = one(S7Session().feed(bytes(raw), True))
    assert (op.op_class, op.malformed, op.function) == (
        OpClass.MALFORMED, Reason.BAD_ITEM, "userdata.cyclic.cyclic_transfer")


def test_s7comm_plus_fragments_are_one_operation() -> None:
    s = S7Session()
    body = bytes.fromhex("31000004ca0000000100000120") + b"\x00" * 20
    assert s.feed(tpkt(c.build(c.S7CommPlusPdu(2, body, trailer=False))), True) == []
    assert s.feed(tpkt(c.build(c.S7CommPlusPdu(2, b"more", trailer=False))), True) == []
    op = one(s.feed(tpkt(c.build(c.S7CommPlusPdu(2, b"end"))), True))
    assert (op.protocol, op.function, op.function_code, op.transaction) == (
        "s7comm-plus", "create_object", 0x04CA, 1)
    assert op.op_class is OpClass.SESSION
    assert op.detail == {"version": 2, "opcode": "request", "function_code": 0x04CA,
                         "session_id": 0x120, "fragments": 3}  # fmt: skip


def test_protocol_spec() -> None:
    assert PROTOCOL.name == "s7comm" and PROTOCOL.tcp_ports == frozenset({102})
    assert isinstance(PROTOCOL.session(), S7Session)


CR_S7 = bytes.fromhex("0300001611e00000000100c0010ac1020100c2020101")
CR_OTHER = bytes.fromhex("0300001611e00000000100c1020001c2020001c0010a")  # e.g. MMS: TSAP 0001
RDP_CR = bytes.fromhex("0300002b26e00000000000436f6f6b69653a206d737473686173683d61646d696e0d0a"
                       "0100080003000000")  # fmt: skip


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (CR_S7, Probe.YES),
        (bytes.fromhex("030000231ee00000001100c1020600c20f53494d415449432d524f4f542d4553c0010a"),
         Probe.YES),
        (frame(c.SetupCommunication(Rosctr.JOB, 0, 1, 1, 480)), Probe.YES),
        (tpkt(b"\x72\x03\x00\x00"), Probe.YES),
        (tpkt(b"", eot=False) + frame(c.PlcStop(1)), Probe.YES),
        (b"", Probe.NEED_MORE),
        (b"\x03", Probe.NEED_MORE),
        (b"\x03\x00\x00\x16\x11", Probe.NEED_MORE),
        (CR_S7[:12], Probe.NEED_MORE),
        (CR_OTHER, Probe.NEED_MORE),  # TPKT, no S7 TSAP: the first DT decides
        (CR_OTHER + tpkt(b"\x0d\x00"), Probe.NO),  # ISO session SPDU (MMS)
        (CR_OTHER + tpkt(b"\x32\x01"), Probe.YES),  # S7 on an unusual TSAP
        (RDP_CR, Probe.NO),  # RDP's cookie is not a COTP parameter list
        (tpkt(b"\x32\x09\x00\x00"), Probe.NO),  # unknown ROSCTR
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Probe.NO),
        (bytes.fromhex("160301020001"), Probe.NO),  # TLS client hello
        (bytes.fromhex("030000000006010300000001"), Probe.NO),  # Modbus, transaction id 0x0300
        (bytes.fromhex("0564050c01000a00"), Probe.NO),  # DNP3
        (bytes.fromhex("680407000000"), Probe.NO),  # IEC-104 STARTDT act
        (bytes.fromhex("0300000702600000"), Probe.NO),  # TPKT with a non-class-0 TPDU
    ],
)
def test_probe(data: bytes, answer: Probe) -> None:
    assert probe(data, True) is answer


def test_session_accepts_connection_request_object() -> None:
    s = S7Session()
    op = one(s.feed(build_tpkt(ConnectionRequest(0, 1, 0, ((0xC2, b"SIMATIC-ROOT-HMI"),))), True))
    assert op.detail is not None and op.detail["dst_tsap"] == "SIMATIC-ROOT-HMI"
