"""The drill's process defenders on real range runs: a setpoint write after the warm-up is found
when it happened, as T0836; the stuxnet-reactor replay of the HMI view is found by the watermark
(and the replayed windows); benign runs of every plant raise nothing.

Ranges here use their own loopback network (127.8.0.0/16), apart from the other tests' drills.
The process defenders read the historian only, so no capture rights are needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interlock.detect.process.tampering import historian_frame
from interlock.drill.model import AlertSeen
from interlock.drill.process_defender import process_alerts
from interlock.drill.runner import run_drill
from interlock.drill.scenario import find_scenario, parse_scenario

pytest.importorskip("pymodbus")
logging.getLogger("pymodbus").setLevel(logging.ERROR)

INSTANCE = 8
WARMUP_S = 360.0

SETPOINT_SCENARIO = """
id: setpoint-test
title: One setpoint write after the warm-up
plant: reactor
based_on: "a test"
seed: 3
speed: max
duration: 12m
warmup: 6m
description: One unauthorized write of the reactor temperature setpoint.
objectives: [Detect the setpoint write (T0836)]
phases:
  - name: Manipulation
    injects:
      - id: setpoint
        at: 8m
        technique: modbus.write_register
        target: plc-1
        params: {tag: temp_sp_k, value: 327}
        expect: [T0836]
"""


def _process(alerts: tuple[AlertSeen, ...]) -> list[AlertSeen]:
    return [a for a in alerts if a.rule.startswith("process.")]


def test_a_setpoint_write_after_the_warmup_is_found_at_its_time_as_t0836(tmp_path: Path) -> None:
    scenario = parse_scenario(SETPOINT_SCENARIO)
    # Without the inline firewall, which would block the write (and leave nothing to find).
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = _process(record.alerts)
    assert len(found) == 1, found  # one write, one alert; nothing else in 12 minutes
    alert = found[0]
    assert 480.0 <= alert.time_s <= 482.0  # the HMI's next poll after the write at 8m
    assert "T0836" in alert.attack_ids
    assert alert.rule == "process.tampering.setpoint-change"
    assert "temp_sp_k" in alert.message and "324.5 -> 327" in alert.message
    assert "process detectors" in record.meta["defender"]
    (inject,) = score.injects
    assert inject.detected
    lines = [json.loads(x) for x in (tmp_path / "process_alerts.jsonl").read_text().splitlines()]
    assert [(x["plant_time_s"], x["technique"]) for x in lines] == [(round(alert.time_s, 3), "T0836")]


def test_the_stuxnet_replay_of_the_hmi_is_found_by_the_watermark(tmp_path: Path) -> None:
    scenario = find_scenario("stuxnet-reactor")
    replay = scenario.inject("replay-hmi")
    replay_from = replay.at_s + 120.0  # records 2 minutes, then plays them back to the HMI
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = _process(record.alerts)
    watermark = [a for a in found if a.rule == "process.watermark"]
    assert len(watermark) == 1, watermark  # one episode: the replay runs to 19m
    assert replay_from <= watermark[0].time_s <= replay_from + 180.0
    assert {"T0856", "T0832"} <= set(watermark[0].attack_ids)
    assert "coolant_temp_k" in watermark[0].message
    repeats = [a for a in found if a.rule == "process.replay"]
    assert repeats and replay_from <= repeats[0].time_s <= replay_from + 60.0
    # Nothing before the replay plays back: the attacker's writes land behind the replayed view.
    assert all(a.time_s >= replay_from for a in found), found
    by_id = {i.inject_id: i for i in score.injects}
    assert by_id["replay-hmi"].detected


async def _benign(plant: str, seed: int, end_s: float) -> Any:
    from interlock.range.runtime import Range

    async with Range(plant, seed=seed, instance=INSTANCE, watermark=True, field_devices=False) as rng:
        await rng.advance(end_s)
        return rng.historian.table()


@pytest.mark.parametrize(("plant", "seed"), [("reactor", 41), ("gas-pipeline", 5), ("refinery", 16)])
def test_a_benign_run_of_each_plant_raises_nothing(plant: str, seed: int) -> None:
    table = asyncio.run(_benign(plant, seed, 1200.0))  # 20 minutes: 6 of warm-up, 14 judged
    assert process_alerts(table, plant, WARMUP_S, seed=seed, watermark=True) == []


def _plc1_view(table: Any) -> tuple[Any, Any, Any, Any]:
    """Plant times, tags, a copy of the values, and which rows are plc-1 as the HMI saw it."""
    t = table.column("plant_time_s").to_numpy()
    dev = table.column("device").to_numpy(zero_copy_only=False)
    src = table.column("source").to_numpy(zero_copy_only=False)
    tag = table.column("tag").to_numpy(zero_copy_only=False)
    return t, tag, table.column("value").to_numpy().copy(), (dev == "plc-1") & (src == "hmi")


def test_an_earlier_window_put_back_in_the_hmi_view_loses_the_watermark() -> None:
    """The historian-level replay: plc-1's HMI rows of 600-900 s replaced by those of 300-600 s."""
    import numpy as np
    import pyarrow as pa

    table = asyncio.run(_benign("reactor", 41, 900.0))
    t, tag, value, hmi = _plc1_view(table)
    earlier = {(g, round(x, 3)): v for g, x, v in zip(tag[hmi], t[hmi], value[hmi], strict=True)}
    for i in np.flatnonzero(hmi & (t >= 600.0)):
        value[i] = earlier.get((tag[i], round(t[i] - 300.0, 3)), value[i])
    replayed = table.set_column(table.schema.get_field_index("value"), "value", pa.array(value))
    alerts = process_alerts(replayed, "reactor", WARMUP_S, seed=41, watermark=True)
    watermark = [a for a in alerts if a.rule == "process.watermark"]
    assert len(watermark) == 1 and 600.0 <= watermark[0].time_s <= 780.0, alerts
    assert {a.rule for a in alerts} <= {"process.watermark", "process.replay"}


def test_a_sensor_held_at_one_value_in_the_hmi_view_is_found_frozen() -> None:
    """The historian-level hold: plc-1's HMI temperature reads its 600 s value from 600 s on."""
    import numpy as np

    table = asyncio.run(_benign("reactor", 41, 900.0))
    t, tag, value, hmi = _plc1_view(table)
    held = hmi & (tag == "reactor_temp_k") & (t >= 600.0)
    value[held] = value[np.flatnonzero(held)[0]]
    alerts = _frozen_alerts(table, value, missed=np.zeros(len(t), dtype=bool))
    assert len(alerts) == 1, alerts  # one episode, to the end of the run
    assert 600.0 < alerts[0].time_s <= 640.0 and "reactor_temp_k" in alerts[0].message
    # One reading held while the others move: a stuck transmitter or one spoofed value.
    assert alerts[0].attack_ids == ("T0831", "T0856") and "other sensors move" in alerts[0].message


def test_a_sensor_block_the_hmi_could_not_read_is_not_a_frozen_view() -> None:
    """A flood that makes the sensor block's reads fail while the other blocks answer: the
    historian has no sensor values from 600 s on. Carried forward they would hold one value for
    five minutes, every sensor at once (a "frozen view"), and the heater's output would seem to
    break its PI law on the stale temperature; a missed read is not a held one."""
    import numpy as np
    import pyarrow as pa

    from interlock.range.points import load_point_list

    table = asyncio.run(_benign("reactor", 41, 900.0))
    sensors = [p.tag for d in load_point_list("reactor").devices if d.name == "plc-1"
               for p in d.points if p.kind == "sensor"]  # fmt: skip
    t, tag, _, hmi = _plc1_view(table)
    missed = hmi & np.isin(tag, sensors) & (t >= 600.0)
    assert missed.any() and (hmi & ~np.isin(tag, sensors) & (t >= 600.0)).any()  # other blocks read
    dropped = table.filter(pa.array(~missed))
    alerts = process_alerts(dropped, "reactor", WARMUP_S, seed=41, watermark=True)
    # Neither a frozen view nor a heater that "does not follow its PI law" on a stale temperature.
    assert [a for a in alerts if a.rule in ("process.frozen", "process.tampering.loop-law")] == [], alerts


def _frozen_alerts(table: Any, value: Any, missed: Any) -> list[AlertSeen]:
    """The frozen check's alerts on the reactor run with ``value`` as the HMI read it and the
    ``missed`` reads dropped from the historian."""
    import pyarrow as pa

    changed = table.set_column(table.schema.get_field_index("value"), "value", pa.array(value))
    changed = changed.filter(pa.array(~missed))
    return [a for a in process_alerts(changed, "reactor", WARMUP_S, seed=41, watermark=True)
            if a.rule == "process.frozen"]  # fmt: skip


def test_missed_reads_do_not_hide_a_held_sensor() -> None:
    """The held temperature of the test above, with every third poll of it missed (a flood on the
    link): the misses neither hold nor break its run, so it is still found frozen."""
    import numpy as np

    table = asyncio.run(_benign("reactor", 41, 900.0))
    t, tag, value, hmi = _plc1_view(table)
    temp = hmi & (tag == "reactor_temp_k")
    held = temp & (t >= 600.0)
    value[held] = value[np.flatnonzero(held)[0]]
    polls = np.cumsum(temp) * temp  # 1, 2, ... on the temperature's own rows
    alerts = _frozen_alerts(table, value, missed=held & (polls % 3 == 0))
    assert len(alerts) == 1 and "reactor_temp_k" in alerts[0].message, alerts
    assert 600.0 < alerts[0].time_s <= 660.0


def test_reads_missed_in_the_warmup_do_not_lengthen_the_frozen_limit() -> None:
    """The temperature unread for 100 s of the warm-up (carried forward, one 100-poll run, which
    would set a 200-poll limit), then held for 90 s after it: the limit comes from the polls that
    read it, so the hold is found."""
    import numpy as np

    table = asyncio.run(_benign("reactor", 41, 900.0))
    t, tag, value, hmi = _plc1_view(table)
    temp = hmi & (tag == "reactor_temp_k")
    held = temp & (t >= 600.0) & (t < 690.0)
    value[held] = value[np.flatnonzero(held)[0]]
    alerts = _frozen_alerts(table, value, missed=temp & (t >= 100.0) & (t < 200.0))
    assert len(alerts) == 1 and "reactor_temp_k" in alerts[0].message, alerts
    assert 600.0 < alerts[0].time_s <= 640.0


HOLD_SCENARIO = """
id: hold-test
title: The HMI's view of the reactor frozen by a man in the middle
plant: reactor
based_on: "a test"
seed: 3
speed: max
duration: 12m
warmup: 6m
description: A proxy records the HMI's reads for one minute, then answers with the last one.
objectives: [Detect the frozen view (T0856)]
phases:
  - name: Concealment
    injects:
      - id: hold-hmi
        at: 8m
        until: 12m
        technique: mitm.replay
        target: plc-1
        params: {record: 1m, hold: true}
        expect: [T0856]
"""


def test_a_view_frozen_by_the_proxy_is_found_by_the_frozen_check(tmp_path: Path) -> None:
    scenario = parse_scenario(HOLD_SCENARIO)
    hold_from = 540.0  # recording ends after one minute; the last reading is held from then on
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = _process(record.alerts)
    frozen = [a for a in found if a.rule == "process.frozen"]
    assert frozen and hold_from <= frozen[0].time_s <= hold_from + 60.0, found
    assert "reactor_temp_k" in frozen[0].message and "a frozen view" in frozen[0].message
    assert frozen[0].attack_ids == ("T0856", "T0832")  # every sensor at once: the view is held
    # A held view repeats no earlier *window* (flat windows prove nothing), so replay is silent.
    assert not [a for a in found if a.rule == "process.replay"]
    assert all(a.time_s >= hold_from for a in found), found
    (inject,) = score.injects
    assert inject.detected


COMMAND_SCENARIO = """
id: command-test
title: Command points operated by an intruder
plant: gas-pipeline
based_on: "a test"
seed: 7
speed: max
duration: 12m
warmup: 6m
description: The compressor stopped by a coil write, the alarms switched off, the city gate valve closed.
objectives: [Detect the commands (T0855)]
phases:
  - name: Commands
    injects:
      - id: alarms-off
        at: 7m
        technique: modbus.write_coil
        target: plc-1
        params: {tag: alarms_enabled, value: false}
        expect: [T0878, T0855]
      - id: compressor-off
        at: 8m
        technique: modbus.write_coil
        target: plc-1
        params: {tag: compressor_run, value: false}
        expect: [T0855, T0831]
      - id: close-valve
        at: 10m
        technique: dnp3.direct_operate
        target: rtu-1
        params: {tag: delivery_valve, op: latch_off}
        expect: [T0855, T0831]
"""


def test_command_points_changed_by_no_operator_are_found_on_modbus_and_dnp3(tmp_path: Path) -> None:
    """Coils and DNP3 binary outputs are watched as setpoints are: a change no operator made is
    the finding, when the HMI's next poll sees it, labelled by what the point does."""
    scenario = parse_scenario(COMMAND_SCENARIO)
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = sorted((a for a in _process(record.alerts) if a.rule.startswith("process.tampering.")),
                   key=lambda a: a.time_s)  # fmt: skip
    assert [(a.destination, a.rule, a.attack_ids) for a in found] == [
        ("plc-1", "process.tampering.alarm_enable-change", ("T0878", "T0855")),
        ("plc-1", "process.tampering.command-change", ("T0855", "T0831")),
        ("rtu-1", "process.tampering.command-change", ("T0855", "T0831")),
    ], found
    # At the HMI's next poll after each write (DNP3's select/operate takes a poll longer).
    assert all(at <= a.time_s <= at + 3.0 for a, at in zip(found, (420.0, 480.0, 600.0), strict=True)), found
    assert "compressor_run changed 1 -> 0" in found[1].message
    assert "delivery_valve changed 1 -> 0" in found[2].message
    assert all(i.detected for i in score.injects), score.injects


def test_a_coil_toggled_back_and_forth_in_the_hmi_view_is_brute_force_io() -> None:
    """The outlet block valve's coil flipped every 5 s for a minute in the HMI's view (a burst
    within one poll is invisible here; one the HMI sees is T0806): one finding, T0806 first."""
    import numpy as np
    import pyarrow as pa

    table = asyncio.run(_benign("gas-pipeline", 5, 720.0))
    t, tag, value, hmi = _plc1_view(table)
    coil = hmi & (tag == "outlet_block_valve")
    toggled = coil & (t >= 600.0) & (t < 660.0) & ((t - 600.0) // 5 % 2 == 0)
    value[toggled] = 0.0
    # The inlet valve closed, opened and closed again: 3 changes, an operation, not T0806.
    inlet = hmi & (tag == "inlet_block_valve")
    value[inlet & (((t >= 640.0) & (t < 645.0)) | (t >= 650.0))] = 0.0
    flipped = table.set_column(table.schema.get_field_index("value"), "value", pa.array(value))
    alerts = process_alerts(flipped, "gas-pipeline", WARMUP_S, seed=5, watermark=True)
    found = [a for a in alerts if a.rule.startswith("process.tampering.")]
    assert len(found) == 2, alerts
    inlet_alert = next(a for a in found if "inlet_block_valve" in a.message)
    assert inlet_alert.rule == "process.tampering.command-change" and "3 changes" in inlet_alert.message
    assert inlet_alert.attack_ids == ("T0855", "T0831")
    toggling = [a for a in found if "outlet_block_valve" in a.message]
    assert toggling[0].rule == "process.tampering.command-toggling"
    assert toggling[0].attack_ids == ("T0806", "T0855", "T0831")
    assert 600.0 <= toggling[0].time_s <= 602.0 and "12 changes" in toggling[0].message
    assert np.isclose(toggling[0].time_s, t[toggled].min())


def test_a_benign_reactor_whose_watermark_dips_below_chance_for_seconds_raises_nothing() -> None:
    """Seed 2: the coolant's correlation with the dither falls below chance for 1-5 polls at a
    time around 950 s and 1140 s (a 120-poll estimate wanders); before the verdict needed 30
    polls running, each dip was a false watermark alert."""
    table = asyncio.run(_benign("reactor", 2, 1500.0))
    assert process_alerts(table, "reactor", WARMUP_S, seed=2, watermark=True) == []


BRUTE_SCENARIO = """
id: brute-test
title: The outlet valve toggled from the attacker's host
plant: gas-pipeline
based_on: "a test"
seed: 7
speed: max
duration: 10m
warmup: 6m
description: Six coil writes 5 s apart, alternating closed and open.
objectives: [Detect the toggling (T0806)]
phases:
  - name: Brute force
    injects:
      - id: toggle
        at: 7m
        technique: modbus.brute_io
        target: plc-1
        params: {kind: coil, tag: outlet_block_valve, values: [0, 1], repeat: 6, interval_s: 5.0}
        expect: [T0806]
"""


def test_a_brute_force_toggles_the_valve_on_plant_time_and_is_found_as_t0806(tmp_path: Path) -> None:
    """The scenario's ``repeat``/``interval_s`` are the runner's: one write per run, the values in
    turn, so the valve closes and opens every 5 s and the HMI sees it (before, each run fired the
    technique's own burst of 10 writes in one instant, ending open: nothing moved)."""
    scenario = parse_scenario(BRUTE_SCENARIO)
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    runs = [a for a in record.truth if a.inject_id == "toggle"]
    assert len(runs) == 6 and sum(a.requests for a in runs) == 6  # one write per run
    assert [round(a.start_s) for a in runs] == [420, 425, 430, 435, 440, 445]
    found = [a for a in _process(record.alerts) if a.rule.startswith("process.tampering.")]
    assert len(found) == 1, found
    assert found[0].rule == "process.tampering.command-toggling" and found[0].attack_ids[0] == "T0806"
    assert 420.0 <= found[0].time_s <= 422.0 and "6 changes" in found[0].message
    assert score.injects[0].detected


SIS_STOP_SCENARIO = """
id: sis-stop-test
title: The reactor's safety CPU stopped and restarted
plant: reactor
based_on: "a test"
seed: 5
speed: max
duration: 11m
warmup: 6m
description: PLC STOP to the S7 safety CPU, a hot start two minutes later.
objectives: [Detect the CPU STOP and START (T0858, T0816)]
phases:
  - name: Disruption
    injects:
      - id: cpu-stop
        at: 7m
        technique: s7.cpu_stop
        target: sis-1
        expect: [T0858, T0816]
      - id: cpu-start
        at: 9m
        technique: s7.cpu_start
        target: sis-1
        expect: [T0858, T0816]
"""


def test_a_safety_cpu_put_in_stop_is_seen_by_the_hmi_and_found(tmp_path: Path) -> None:
    """The HMI reads the S7 safety CPU's mode (SZL 0x0424) with its DB: a STOP and a restart no
    operator made are findings at the next poll. While stopped, the CPU's DB holds still (no
    program copies the transmitter in), as on a real CPU."""
    scenario = parse_scenario(SIS_STOP_SCENARIO)
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = [a for a in _process(record.alerts) if a.rule.startswith("process.tampering.")]
    assert [(a.destination, a.rule, a.attack_ids) for a in found] == [
        ("sis-1", "process.tampering.cpu_state-change", ("T0858", "T0816")),
        ("sis-1", "process.tampering.cpu_state-change", ("T0858", "T0816")),
    ], found
    assert 420.0 <= found[0].time_s <= 422.0 and "sis_cpu_run changed 1 -> 0" in found[0].message
    assert 540.0 <= found[1].time_s <= 542.0 and "sis_cpu_run changed 0 -> 1" in found[1].message
    assert all(i.detected for i in score.injects), score.injects
    trends = record.trends
    assert trends is not None
    frame = historian_frame(trends, "sis-1", "hmi")
    t = np.array([float(x) for x in frame.timestamps or ()])
    temp = frame.values[:, frame.tags.index("sis_reactor_temp_k")]
    stopped = (t > 425) & (t < 535)
    assert np.ptp(temp[stopped]) == 0.0 and np.ptp(temp[(t > 300) & (t < 410)]) > 0.0


def test_a_device_the_hmi_cannot_read_for_longer_than_the_warmup_knows_is_a_lost_view() -> None:
    """plc-1's HMI rows removed, as a device that stops answering leaves them: 20 polls with no
    answer and 6 polls missing a block are findings (T0815, T0814) once the run passes its limit;
    a single missed poll, as the warm-up had one, is not."""
    import numpy as np
    import pyarrow as pa

    table = asyncio.run(_benign("gas-pipeline", 5, 900.0))
    t, tag, _, plc1 = _plc1_view(table)
    block = np.isin(tag, ["discharge_bar", "suction_bar"])  # some of plc-1's values, not all
    drop = plc1 & (
        (np.abs(t - 100.0) < 0.5)  # the warm-up's one missed poll: the limit is 2 * 1 + 2 = 4
        | ((t >= 500.0) & (t < 520.0))  # no answer for 20 polls
        | ((t >= 650.0) & (t < 656.0) & block)  # a block unread for 6 polls
        | (np.abs(t - 800.0) < 0.5)  # one missed poll, as in the warm-up
    )
    cut = table.filter(pa.array(~drop))
    found = [a for a in process_alerts(cut, "gas-pipeline", WARMUP_S, seed=5, watermark=True)
             if a.rule == "process.view-lost"]  # fmt: skip
    assert [(a.destination, a.time_s, a.attack_ids) for a in found] == [
        ("plc-1", 503.0, ("T0815", "T0814")),
        ("plc-1", 653.0, ("T0815", "T0814")),
    ], found
    assert "no answer for 4+ polls" in found[0].message and "until t=519s" in found[0].message
    assert "at most" in found[1].message
    assert process_alerts(table, "gas-pipeline", WARMUP_S, seed=5, watermark=True) == []


LISTEN_ONLY_SCENARIO = """
id: listen-only-test
title: The station PLC forced into listen-only mode, then restarted
plant: gas-pipeline
based_on: "a test"
seed: 9
speed: max
duration: 10m
warmup: 6m
description: FC 8/4 silences the PLC; FC 8/1 brings it back.
objectives: [Detect the loss of view (T0815)]
phases:
  - name: Denial of view
    injects:
      - id: listen-only
        at: 7m
        technique: modbus.force_listen_only
        target: plc-1
        expect: [T0814, T0815]
      - id: restart
        at: 8m
        technique: modbus.restart_comms
        target: plc-1
        expect: [T0816]
"""


def test_a_plc_in_listen_only_mode_falls_silent_and_the_lost_view_is_found(tmp_path: Path) -> None:
    """The range's PLC keeps the Modbus specification's listen-only mode (pymodbus only sets a flag
    and answers): it stops answering until a Restart Communications Option, the HMI backs off
    (COMM_RETRY_S) and the process defenders report the lost view (T0815, T0814)."""
    from interlock.range.runtime import COMM_RETRY_S

    scenario = parse_scenario(LISTEN_ONLY_SCENARIO)
    record, score = run_drill(
        scenario, tmp_path, progress=False, store=False, firewall=False, instance=INSTANCE
    )
    found = [a for a in _process(record.alerts) if a.rule == "process.view-lost"]
    assert [(a.destination, a.attack_ids) for a in found] == [("plc-1", ("T0815", "T0814"))], found
    assert 420.0 <= found[0].time_s <= 424.0 and "no answer" in found[0].message
    assert score.injects[0].detected
    trends = record.trends
    assert trends is not None
    t = np.array([float(x) for x in historian_frame(trends, "plc-1", "hmi").timestamps or ()])
    assert not ((t > 421) & (t < 480)).any()  # silent from the listen-only command on
    back = t[t >= 480]
    assert back.size and back[0] <= 480 + COMM_RETRY_S + 1  # answering again after the restart
