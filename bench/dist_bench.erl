%% SPDX-License-Identifier: Apache-2.0
%% Erlang/OTP distribution, the baseline of bench/bench_dist.cc: the same
%% 64-byte term, the same workloads, the same flow-control window.
%%   stream:   a process here sends N messages to a process on Node, which
%%             acknowledges every 1,000; at most 16,000 unacknowledged.
%%   pingpong: send, the remote process echoes, wait; N round trips.
%% main([Node, StreamN, PingN, Reps]) prints the medians of Reps runs.
-module(dist_bench).
-export([main/1, sink/2, echo/1]).

-define(ACK_EVERY, 1000).
-define(WINDOW, 16000).

msg() -> {ping, 1234567, binary:copy(<<"x">>, 46)}.

main([NodeS, StreamNS, PingNS, RepsS]) ->
    Node = list_to_atom(NodeS),
    pong = net_adm:ping(Node),
    StreamN = list_to_integer(StreamNS),
    PingN = list_to_integer(PingNS),
    Reps = lists:seq(1, list_to_integer(RepsS)),
    64 = byte_size(term_to_binary(msg(), [{minor_version, 2}])) - 1,
    S = median([stream(Node, StreamN) || _ <- Reps]),
    P = median([pingpong(Node, PingN) || _ <- Reps]),
    io:format("erl_stream ~w~nerl_pingpong ~w~n", [round(S), round(P)]),
    halt().

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

per_second(N, T0) ->
    N / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).

stream(Node, N) ->
    Sink = spawn(Node, ?MODULE, sink, [self(), N]),
    T0 = erlang:monotonic_time(microsecond),
    send_loop(Sink, msg(), N, 0, 0),
    receive {done, Sink} -> ok end,
    Rate = per_second(N, T0),
    flush_acks(),
    Rate.

send_loop(_Sink, _M, N, N, _Acked) ->
    ok;
send_loop(Sink, M, N, I, Acked) when I - Acked >= ?WINDOW ->
    receive ack -> send_loop(Sink, M, N, I, Acked + ?ACK_EVERY) end;
send_loop(Sink, M, N, I, Acked) ->
    Sink ! M,
    send_loop(Sink, M, N, I + 1, Acked).

flush_acks() ->
    receive ack -> flush_acks() after 0 -> ok end.

sink(From, N) -> sink(From, N, 1).

sink(From, N, I) when I > N ->
    From ! {done, self()};
sink(From, N, I) ->
    receive _ -> ok end,
    case I rem ?ACK_EVERY of
        0 -> From ! ack;
        _ -> ok
    end,
    sink(From, N, I + 1).

pingpong(Node, N) ->
    Echo = spawn(Node, ?MODULE, echo, [self()]),
    T0 = erlang:monotonic_time(microsecond),
    ping_loop(Echo, msg(), N),
    Rate = per_second(N, T0),
    Echo ! stop,
    Rate.

ping_loop(_Echo, _M, 0) ->
    ok;
ping_loop(Echo, M, K) ->
    Echo ! M,
    receive M -> ping_loop(Echo, M, K - 1) end.

echo(From) ->
    receive
        stop -> ok;
        M -> From ! M, echo(From)
    end.
