%% SPDX-License-Identifier: Apache-2.0
%% The BEAM side of bench/compare: both roles of `edist bench pair`'s
%% protocol (cli/bench_pair.h) in Erlang, so that an erl node can be the
%% sink of an edist driver, and two erl nodes can run the same workloads
%% over Erlang/OTP distribution.
%%   sink():  registers edist_bench_peer and serves drivers until halted.
%%   main([SinkNode, Job...]): runs each job against SinkNode's sink and
%%     prints one "result field=value ..." line per job (the fields of
%%     bench_pair.h's result line), then halts. A job is
%%     "Bytes:Count:RttCount:Warmup:Rate:OlCount:Fan:FanCount:SamplesPrefix"
%%     (a 0 count leaves that part out; an empty prefix writes no CDF).
-module(compare_peer).
-export([sink/0, main/1]).
-export([sink_loop/1, fan_sink/5, fan_sender/6]).

-define(STALL_MS, 10000).
-define(WINDOW_BYTES, 64 * 1024 * 1024).
-define(WINDOW_MESSAGES, 16000).

%% ---- the sink --------------------------------------------------------------

-record(s, {driver, count = 0, ack_every = 1, bytes = 0, seen,
            received = 0, unique = 0, ooo = 0, dups = 0, bad = 0,
            next = 0, worker = false}).

sink() ->
    register(edist_bench_peer, spawn(?MODULE, sink_loop, [#s{}])),
    ok.

start(S, Driver, Count, AckEvery, Bytes) ->
    Driver ! {hello, self()},
    S#s{driver = Driver, count = Count, ack_every = AckEvery, bytes = Bytes,
        seen = atomics:new(max(Count, 1), []), received = 0, unique = 0,
        ooo = 0, dups = 0, bad = 0, next = 0}.

fan_sink(Driver, Count, AckEvery, Bytes, _) ->
    sink_loop(start(#s{worker = true}, Driver, Count, AckEvery, Bytes)).

sink_loop(S) ->
    receive
        {data, Seq, _} = M when is_integer(Seq), Seq >= 0, Seq < S#s.count ->
            sink_loop(data(S, Seq, M));
        {ping, _, _} = M when S#s.driver =/= undefined ->
            S#s.driver ! M,
            sink_loop(S);
        {hello, Driver, Count, AckEvery, Bytes} when not S#s.worker ->
            sink_loop(start(S, Driver, Count, AckEvery, Bytes));
        {fan_out, Driver, N, Count, AckEvery, Bytes} when not S#s.worker ->
            [spawn(?MODULE, fan_sink, [Driver, Count, AckEvery, Bytes, I])
             || I <- lists:seq(1, N)],
            sink_loop(S);
        {stream_end, _Sent} when S#s.driver =/= undefined ->
            S#s.driver ! {stream_result, S#s.received, S#s.unique, S#s.ooo,
                          S#s.dups, S#s.bad},
            case S#s.worker of
                true -> ok;
                false -> sink_loop(S)
            end;
        _ ->
            sink_loop(S#s{bad = S#s.bad + 1})
    end.

data(S1 = #s{seen = Seen, received = R0}, Seq, _M) ->
    R = R0 + 1,
    S2 = case atomics:add_get(Seen, Seq + 1, 1) of
             1 when Seq + 1 < S1#s.next -> S1#s{unique = S1#s.unique + 1,
                                                ooo = S1#s.ooo + 1};
             1 -> S1#s{unique = S1#s.unique + 1};
             _ -> S1#s{dups = S1#s.dups + 1}
         end,
    case R rem S1#s.ack_every of
        0 -> S1#s.driver ! {ack, R};
        _ -> ok
    end,
    S2#s{received = R, next = max(S2#s.next, Seq + 1)}.

%% ---- the driver ------------------------------------------------------------

now_ns() -> erlang:monotonic_time(nanosecond).

%% {Tag, Seq, <<Pad>>} of about Bytes in the external format: 18 bytes of
%% tuple, atom, 32-bit integer and binary header, as edist's driver.
message(Tag, Seq, Pad) -> {Tag, Seq, Pad}.

pad(Bytes) -> binary:copy(<<"x">>, max(Bytes - 18, 0)).

window(Bytes, Receivers) ->
    W = max(1, min(?WINDOW_MESSAGES, ?WINDOW_BYTES div Bytes)),
    Ack = max(1, W div (16 * Receivers)),
    {max(W, Receivers * Ack), Ack}.

main([SinkS | Jobs]) ->
    Sink = list_to_atom(SinkS),
    pong = net_adm:ping(Sink),
    [begin
         R = job(Sink, parse_job(J)),
         io:format("result~s~n", [[io_lib:format(" ~s=~w", [K, V]) || {K, V} <- R]])
     end || J <- Jobs],
    halt().

parse_job(J) ->
    [B, C, Rt, W, Rate, Ol, Fan, FanC | Rest] = string:split(J, ":", all),
    I = fun list_to_integer/1,
    {I(B), I(C), I(Rt), I(W), I(Rate), I(Ol), I(Fan), I(FanC),
     lists:flatten(lists:join(":", Rest))}.

hello(Sink, Count, Ack, Bytes) ->
    {edist_bench_peer, Sink} ! {hello, self(), Count, Ack, Bytes},
    receive {hello, Pid} -> Pid after ?STALL_MS -> exit(no_hello) end.

job(Sink, {Bytes, Count, Rtt, Warm, Rate, OlCount, Fan, FanCount, Samples}) ->
    {_, Ack} = window(Bytes, 1),
    Pid = hello(Sink, Count, Ack, Bytes),
    St = case Count of 0 -> #{}; _ -> stream(Pid, Count, Bytes) end,
    {RttF, RttSamples} = case Rtt of
                             0 -> {#{}, []};
                             _ -> closed_loop(Pid, Rtt, Warm, Bytes)
                         end,
    {OlF, OlSamples} = case OlCount of
                           0 -> {#{}, []};
                           _ -> open_loop(Pid, Rate, OlCount, Bytes)
                       end,
    FanF = case Fan of
               0 -> #{};
               _ -> maps:merge(fan_out(Sink, Fan, FanCount, Bytes),
                               fan_in(Sink, Fan, FanCount, Bytes))
           end,
    Samples =/= "" andalso RttSamples =/= [] andalso
        write_cdf(Samples ++ ".closed.cdf", RttSamples),
    Samples =/= "" andalso OlSamples =/= [] andalso
        write_cdf(Samples ++ ".open.cdf", OlSamples),
    F = maps:merge(maps:merge(St, RttF), maps:merge(OlF, FanF)),
    Lost = maps:get(sent, F, 0) - maps:get(unique, F, 0)
        + maps:get(fanout_sent, F, 0) - maps:get(fanout_unique, F, 0)
        + maps:get(fanin_sent, F, 0) - maps:get(fanin_unique, F, 0),
    [{K, maps:get(K, F#{lost => Lost, fan => Fan}, 0)} || K <- fields()].

fields() ->
    [sent, received, unique, lost, out_of_order, duplicates, bad_messages,
     send_waits, stalled, stream_seconds, rtt_count, rtt_warmup, rtt_seconds,
     rtt_p50_us, rtt_p90_us, rtt_p99_us, rtt_p999_us, rtt_max_us, ol_rate,
     ol_count, ol_received, ol_seconds, ol_p50_us, ol_p90_us, ol_p99_us,
     ol_p999_us, ol_max_us, fan, fanout_sent, fanout_unique, fanout_seconds,
     fanin_sent, fanin_unique, fanin_seconds].

%% Sends Total messages round robin over Pids with at most Window
%% unacknowledged, each {ack, _} standing for Ack; the counts sent per pid.
stream_to(Pids, Total, Window, Ack, Bytes) ->
    T = list_to_tuple(Pids),
    N = tuple_size(T),
    Pad = pad(Bytes),
    stream_loop(T, N, Pad, 0, Total, Window, Ack, 0).

stream_loop(_, _, _, Total, Total, _, _, _) -> ok;
stream_loop(T, N, Pad, I, Total, Window, Ack, Acked) when I - Acked >= Window ->
    receive {ack, _} -> stream_loop(T, N, Pad, I, Total, Window, Ack, Acked + Ack)
    after ?STALL_MS -> stalled
    end;
stream_loop(T, N, Pad, I, Total, Window, Ack, Acked) ->
    element(I rem N + 1, T) ! message(data, I div N, Pad),
    stream_loop(T, N, Pad, I + 1, Total, Window, Ack, Acked).

end_stream(Pid, Sent) ->
    Pid ! {stream_end, Sent},
    receive {stream_result, Rec, Uniq, Ooo, Dups, Bad} -> {Rec, Uniq, Ooo, Dups, Bad}
    after ?STALL_MS -> exit(no_stream_result)
    end.

drop_acks() -> receive {ack, _} -> drop_acks() after 0 -> ok end.

stream(Pid, Count, Bytes) ->
    {Window, Ack} = window(Bytes, 1),
    T0 = now_ns(),
    Stalled = stream_to([Pid], Count, Window, Ack, Bytes),
    {Rec, Uniq, Ooo, Dups, Bad} = end_stream(Pid, Count),
    Secs = (now_ns() - T0) / 1.0e9,
    drop_acks(),
    #{sent => Count, received => Rec, unique => Uniq, out_of_order => Ooo,
      duplicates => Dups, bad_messages => Bad, stream_seconds => Secs,
      stalled => case Stalled of stalled -> 1; ok -> 0 end}.

closed_loop(Pid, N, Warm, Bytes) ->
    Pad = pad(Bytes),
    ping_loop(Pid, Pad, 0, Warm, []),
    T0 = now_ns(),
    Samples = ping_loop(Pid, Pad, 0, N, []),
    Secs = (now_ns() - T0) / 1.0e9,
    Sorted = lists:sort(Samples),
    {(percentiles(rtt, Sorted))#{rtt_count => N, rtt_warmup => Warm,
                                 rtt_seconds => Secs}, Sorted}.

ping_loop(_, _, N, N, Acc) -> Acc;
ping_loop(Pid, Pad, I, N, Acc) ->
    T0 = now_ns(),
    Pid ! message(ping, I, Pad),
    receive {ping, I, _} -> ok after ?STALL_MS -> exit(no_pong) end,
    ping_loop(Pid, Pad, I + 1, N, [now_ns() - T0 | Acc]).

%% Pings on a fixed schedule, whatever has come back; each timed from
%% when the schedule said to send it.
open_loop(Pid, Rate, N, Bytes) ->
    Pad = pad(Bytes),
    Period = 1.0e9 / Rate,
    T0 = now_ns(),
    Samples = ol_loop(Pid, Pad, T0, Period, 0, N, 0, [], T0),
    Secs = (now_ns() - T0) / 1.0e9,
    Sorted = lists:sort(Samples),
    {(percentiles(ol, Sorted))#{ol_rate => Rate, ol_count => N,
                                ol_received => length(Sorted),
                                ol_seconds => Secs}, Sorted}.

ol_loop(_, _, _, _, _, N, N, Acc, _) -> Acc;
ol_loop(Pid, Pad, T0, Period, Next, N, Got, Acc, Last) ->
    Now = now_ns(),
    Next1 = send_due(Pid, Pad, T0, Period, Next, N, Now),
    receive
        {ping, Seq, _} ->
            Lat = now_ns() - (T0 + round(Seq * Period)),
            ol_loop(Pid, Pad, T0, Period, Next1, N, Got + 1, [Lat | Acc], now_ns())
    after 0 ->
            case Now - Last > ?STALL_MS * 1000000 of
                true -> exit(no_pong);
                false -> ol_loop(Pid, Pad, T0, Period, Next1, N, Got, Acc, Last)
            end
    end.

send_due(Pid, Pad, T0, Period, Next, N, Now) when Next < N ->
    case T0 + round(Next * Period) =< Now of
        true ->
            Pid ! message(ping, Next, Pad),
            send_due(Pid, Pad, T0, Period, Next + 1, N, Now);
        false -> Next
    end;
send_due(_, _, _, _, Next, _, _) -> Next.

percentiles(Prefix, Sorted) ->
    T = list_to_tuple(Sorted),
    P = fun(Pct) -> pct(T, Pct) / 1000 end,
    K = fun(S) -> list_to_atom(atom_to_list(Prefix) ++ "_" ++ S) end,
    #{K("p50_us") => P(50), K("p90_us") => P(90), K("p99_us") => P(99),
      K("p999_us") => P(99.9), K("max_us") => P(100)}.

%% nearest rank, as cli/percentile.h
pct(T, _) when tuple_size(T) =:= 0 -> 0;
pct(T, Pct) ->
    N = tuple_size(T),
    Rank = max(1, min(N, ceil(Pct * N / 100))),
    element(Rank, T).

write_cdf(Path, Sorted) ->
    T = list_to_tuple(Sorted),
    Pcts = [I / 10 || I <- lists:seq(1, 999)] ++ [99.95, 99.99, 100],
    Lines = [io_lib:format("~.2f ~.3f~n", [float(P), pct(T, P) / 1000]) || P <- Pcts],
    ok = file:write_file(Path, ["# percentile round_trip_us\n" | Lines]).

fan_out(Sink, N, FanCount, Bytes) ->
    Each = FanCount div N,
    {Window, Ack} = window(Bytes, N),
    {edist_bench_peer, Sink} ! {fan_out, self(), N, Each, Ack, Bytes},
    Pids = [receive {hello, P} -> P after ?STALL_MS -> exit(no_fan_hello) end
            || _ <- lists:seq(1, N)],
    T0 = now_ns(),
    stream_to(Pids, Each * N, Window, Ack, Bytes),
    Uniq = lists:sum([element(2, end_stream(P, Each)) || P <- Pids]),
    Secs = (now_ns() - T0) / 1.0e9,
    drop_acks(),
    #{fanout_sent => Each * N, fanout_unique => Uniq, fanout_seconds => Secs}.

%% N senders here, one sink there; the acks come to this process, which
%% lets the senders on through a shared counter.
fan_in(Sink, N, FanCount, Bytes) ->
    Total = FanCount div N * N,
    {Window, Ack} = window(Bytes, 1),
    Pid = hello(Sink, Total, Ack, Bytes),
    C = atomics:new(2, []), % sent, acked
    Self = self(),
    T0 = now_ns(),
    [spawn_link(?MODULE, fan_sender, [Self, Pid, C, {I, N, Total}, Window, Bytes])
     || I <- lists:seq(0, N - 1)],
    fan_in_wait(C, Ack, N),
    Sent = atomics:get(C, 1),
    {_, Uniq, _, _, _} = end_stream(Pid, Sent),
    Secs = (now_ns() - T0) / 1.0e9,
    drop_acks(),
    #{fanin_sent => Sent, fanin_unique => Uniq, fanin_seconds => Secs}.

fan_in_wait(_, _, 0) -> ok;
fan_in_wait(C, Ack, Left) ->
    receive
        {ack, _} -> atomics:add(C, 2, Ack), fan_in_wait(C, Ack, Left);
        fan_done -> fan_in_wait(C, Ack, Left - 1)
    after ?STALL_MS -> exit(fan_in_stalled)
    end.

fan_sender(Coord, Pid, C, {First, N, Total}, Window, Bytes) ->
    Pad = pad(Bytes),
    fan_send(Pid, C, Pad, First, N, Total, Window),
    Coord ! fan_done.

fan_send(_, _, _, Seq, _, Total, _) when Seq >= Total -> ok;
fan_send(Pid, C, Pad, Seq, N, Total, Window) ->
    case atomics:get(C, 1) - atomics:get(C, 2) >= Window of
        true ->
            erlang:yield(),
            fan_send(Pid, C, Pad, Seq, N, Total, Window);
        false ->
            Pid ! message(data, Seq, Pad),
            atomics:add(C, 1, 1),
            fan_send(Pid, C, Pad, Seq + N, N, Total, Window)
    end.
