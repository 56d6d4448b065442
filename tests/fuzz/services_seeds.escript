#!/usr/bin/env escript
%% SPDX-License-Identifier: Apache-2.0
%% Writes the kept seeds of fuzz_services (tests/fuzz/seeds/services):
%% one file per message a peer may send to a service, its first byte the
%% service (0 global_name_server, 1 pg, 2 rex, 3 net_kernel, 4 echo), the
%% rest term_to_binary(Msg). Run: escript services_seeds.escript DIR
main([Dir]) ->
    Peer = 'peer@localhost', Me = 'fuzz@localhost',
    P = pid(Peer, 40), L = pid(Peer, 41), Q = pid(Me, 200),
    Ref = make_ref(),
    Global = [
        {nodeup, Peer, #{connection_id => 1}},
        {nodedown, Peer, #{connection_id => 1}},
        {'$gen_cast', {init_connect, {8, 1}, Peer, {locker, no_longer_a_pid, [], L}}},
        {'$gen_cast', {lock_set, L, true, [Peer], 1}},
        {'$gen_cast', {exchange, Peer, [{name1, P, {global, random_exit_name}}], [], 1}},
        {'$gen_cast', {resolved, Peer, [{name1, P}], [Peer, 'other@localhost'], [], [], 1}},
        {'$gen_cast', {new_nodes, Peer, [{insert, name2, P, {global, random_exit_name}}],
                       [], ['n3@localhost'], []}},
        {'$gen_cast', {in_sync, Peer, true}},
        {init_connect_ack, Peer, 1, 2},
        {cancel_connect, Peer, 1},
        {lost_connection, Peer, 1, 1, 'other@localhost'},
        {remove_connection, Peer},
        {lock_is_set, Peer, 1, {global, Peer}},
        {'DOWN', Ref, process, P, noconnection},
        {'$gen_call', {P, Ref}, {set_lock, {{global, x}, P}}},
        {'$gen_call', {P, Ref}, {del_lock, {{global, x}, P}}},
        {'$gen_call', {P, [alias | Ref]}, {register, name3, Q, {global, random_exit_name}}},
        {'$gen_call', {P, Ref}, {register_ext, name3, Q, {global, random_exit_name}, Peer}},
        {'$gen_call', {P, Ref}, {unregister, name3}},
        {'$gen_call', {P, Ref}, {whereis, name3}},
        {'$gen_call', {P, Ref}, {registrar, register, name4, Q}},
        {'$gen_call', {P, Ref}, registered_names},
        {'$gen_call', {P, Ref}, sync}],
    Pg = [
        {discover, P},
        {'$gen_cast', {sync, P, [{group1, [P, L]}]}},
        {join, P, group1, [P]},
        {leave, P, [P], [group1]},
        {'DOWN', Ref, process, P, noconnection},
        {nodeup, Peer},
        {'$gen_call', {P, Ref}, {join_local, group2, [Q]}},
        {'$gen_call', {P, Ref}, {leave_local, group2, [Q]}},
        {'$gen_call', {P, Ref}, {get_members, group1}},
        {'$gen_call', {P, Ref}, {monitor, group1}},
        {'$gen_call', {P, Ref}, {demonitor, Ref}},
        {'$gen_call', {P, Ref}, {start_scope, scope2}},
        {'$gen_call', {P, Ref}, which_groups},
        {'$gen_call', {P, Ref}, monitor}],
    Rex = [
        {P, {call, erlang, node, [], P}},
        {P, {call, erlang, throw, [x], P}},
        {P, {call, nomod, nofun, [1, 2], P}},
        {P, features_request},
        {P, {send, echo, hello}},
        {P, {sbcast, echo, hello}},
        {'$gen_call', {P, Ref}, {call, erlang, node, [], P}},
        {'$gen_cast', {cast, erlang, node, [], P}}],
    NetKernel = [{'$gen_call', {P, [alias | Ref]}, {is_auth, Peer}}],
    Echo = [{P, hello}, {P, <<1, 2, 3>>}],
    write(Dir, 0, Global), write(Dir, 1, Pg), write(Dir, 2, Rex),
    write(Dir, 3, NetKernel), write(Dir, 4, Echo).

%% A pid of Node (NEW_PID_EXT), whatever node this runs on.
pid(Node, Id) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Id:32, 0:32, 1:32>>).

write(Dir, Service, Msgs) ->
    lists:foreach(
      fun({I, M}) ->
              F = filename:join(Dir, io_lib:format("s~b_~2..0b", [Service, I])),
              ok = file:write_file(F, <<Service, (term_to_binary(M))/binary>>)
      end, lists:zip(lists:seq(1, length(Msgs)), Msgs)).
