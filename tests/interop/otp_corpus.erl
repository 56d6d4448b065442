%% SPDX-License-Identifier: Apache-2.0
%% Random-term corpus for checking the edist ETF codec against a real OTP.
%%
%%   gen    Seed Count CorpusFile   write Count random terms plus fixed edge
%%                                  cases, each with OTP's encodings and ~w text
%%   verify CorpusFile OursFile     check what the C checker produced
%%   seeds  Seed Dir                small libFuzzer seeds under Dir/{decode,
%%                                  parse,pattern}
%%
%% Everything random comes from rand:seed(exsss, Seed), so a seed reproduces a
%% corpus (pids, refs and ports aside: they depend on the running node).
%%
%% Corpus file (all integers unsigned 32-bit big-endian):
%%   "EDC1" LocalCreation
%%   then per record: Index Flags Len Min2 Len Default Len Compressed Len Text
%% Min2 = term_to_binary(T, [{minor_version,2}]), Default = term_to_binary(T)
%% (latin-1 atoms) or, for LEGACY records, hand-made old-style bytes that
%% decode to T, Compressed = term_to_binary(T, [compressed]),
%% Text = ~w text as UTF-8.
%%
%% Output of the C checker, read by verify:
%%   "EDO1" then per record:
%%   Index Len Ours Len OursCompressed Len Parsed Len Printed Cmp:8
%% Ours/OursCompressed are external terms (empty if the checker could not
%% make them), Parsed an encoded term without 131 (empty if not parsed),
%% Printed our ~w text of the term (empty if printing failed),
%% Cmp the sign of edist_term_compare(T(Index-1), T(Index)): 0 less, 1 equal,
%% 2 greater, 255 not available (first record, or compare failed).
-module(otp_corpus).
-export([main/1]).

-define(F_CANONICAL, 1). % no map of > 32 keys outside funs: OTP bytes are ours
-define(F_PARSEABLE, 2). % no funs, no pids/ports/refs of other nodes, valid text
-define(F_PRINTABLE, 4). % no pids/ports/refs of other nodes
-define(F_LEGACY, 8).    % Default holds hand-made old-style bytes

main(Args) ->
    Status = try run(Args)
             catch C:E:St ->
                     io:format(standard_error, "otp_corpus ~p: ~p:~p~n~p~n",
                               [Args, C, E, St]),
                     2
             end,
    erlang:halt(Status).

run(["gen", Seed, Count, File]) ->
    gen(list_to_integer(Seed), list_to_integer(Count), File);
run(["verify", Corpus, Ours]) ->
    verify(Corpus, Ours);
run(["seeds", Seed, Dir]) ->
    seeds(list_to_integer(Seed), Dir).

%% ---- corpus ----------------------------------------------------------------

gen(Seed, Count, File) ->
    rand:seed(exsss, Seed),
    put(pool, make_pool()),
    {ok, Fd} = file:open(File, [write, raw, binary, {delayed_write, 1 bsl 20, 1000}]),
    ok = file:write(Fd, <<"EDC1", (creation()):32>>),
    Legacy = [{T, Bytes} || Bytes <- legacy_bytes(),
                            {ok, T} <- [safe_decode(Bytes)]],
    N1 = lists:foldl(fun({T, Old}, I) -> write_record(Fd, I, T, Old), I + 1 end,
                     0, Legacy),
    N2 = lists:foldl(fun(T, I) -> write_record(Fd, I, T, none), I + 1 end,
                     N1, specials()),
    N3 = random_terms(Fd, N2, Count, none),
    ok = file:close(Fd),
    io:format("corpus: seed ~w, ~w records (~w legacy, ~w fixed, ~w random)~n",
              [Seed, N3, N1, N2 - N1, N3 - N2]),
    0.

%% Every few terms the next one is a small change of the previous one, so that
%% consecutive pairs (whose order the checker reports) are often close calls.
random_terms(_Fd, I, 0, _Prev) ->
    I;
random_terms(Fd, I, Left, Prev) ->
    T = case {Prev, r(3)} of
            {{P}, 1} -> mutate(P);
            _ -> term(4)
        end,
    write_record(Fd, I, T, none),
    random_terms(Fd, I + 1, Left - 1, {T}).

write_record(Fd, Index, T, Old) ->
    Min2 = term_to_binary(T, [{minor_version, 2}]),
    {Default, Legacy} = case Old of
                            none -> {term_to_binary(T), 0};
                            _ -> {Old, ?F_LEGACY}
                        end,
    Comp = term_to_binary(T, [compressed]),
    Text = unicode:characters_to_binary(io_lib:format("~w", [T])),
    #{bigmap := BigMap, function := Fun, foreign := Foreign, unscannable := Bad} = scan(T),
    Flags = flag(not BigMap, ?F_CANONICAL) bor
            flag(not (Fun orelse Foreign orelse Bad), ?F_PARSEABLE) bor
            flag(not Foreign, ?F_PRINTABLE) bor Legacy,
    ok = file:write(Fd, [<<Index:32, Flags:32>>, lp(Min2), lp(Default),
                         lp(Comp), lp(Text)]).

lp(B) -> [<<(byte_size(B)):32>>, B].

flag(true, F) -> F;
flag(false, _) -> 0.

%% What T holds, outside fun environments (funs are passed through as bytes):
%% a map of > 32 keys, a fun, a pid/port/ref of another node, an atom with
%% U+FFFE or U+FFFF (~w writes them as \x{FFFF}, which is not valid Erlang
%% text: erl_scan refuses it, and so does our parser).
scan(T) ->
    scan([T], #{bigmap => false, function => false, foreign => false,
                unscannable => false}).

scan([], Acc) -> Acc;
scan([T | Rest], Acc) when is_list(T) -> scan(cons_items(T, Rest), Acc);
scan([T | Rest], Acc) when is_tuple(T) -> scan(tuple_to_list(T) ++ Rest, Acc);
scan([T | Rest], Acc) when is_map(T) ->
    Items = lists:append([[K, V] || {K, V} <- maps:to_list(T)]),
    scan(Items ++ Rest, set_if(map_size(T) > 32, bigmap, Acc));
scan([T | Rest], Acc) when is_function(T) -> scan(Rest, Acc#{function := true});
scan([T | Rest], Acc) when is_pid(T); is_port(T); is_reference(T) ->
    scan(Rest, set_if(node(T) =/= node(), foreign, Acc));
scan([T | Rest], Acc) when is_atom(T) ->
    Chars = atom_to_list(T),
    Bad = lists:member(16#FFFE, Chars) orelse lists:member(16#FFFF, Chars),
    scan(Rest, set_if(Bad, unscannable, Acc));
scan([_ | Rest], Acc) -> scan(Rest, Acc).

set_if(true, Key, Acc) -> Acc#{Key := true};
set_if(false, _, Acc) -> Acc.

%% Elements and tail of a possibly improper list, pushed onto Rest.
cons_items([H | T], Rest) -> [H | cons_items(T, Rest)];
cons_items([], Rest) -> Rest;
cons_items(Tail, Rest) -> [Tail | Rest].

creation() ->
    <<131, 88, _/binary>> = B = term_to_binary(self(), [{minor_version, 2}]),
    binary:decode_unsigned(binary:part(B, byte_size(B) - 4, 4)).

safe_decode(B) ->
    try {ok, binary_to_term(B)} catch error:badarg -> error end.

%% ---- random terms ------------------------------------------------------------

r(N) -> rand:uniform(N).
pick(L) -> lists:nth(r(length(L)), L).
seq(0) -> [];
seq(N) -> lists:seq(1, N).

%% Container length: mostly short, sometimes longer.
len() ->
    case r(30) of
        1 -> 0;
        2 -> 5 + r(40);
        3 -> 255 + r(3) - 2; % around the SMALL_TUPLE limit
        _ -> r(4)
    end.

term(D) when D =< 0 -> leaf();
term(D) ->
    case r(24) of
        N when N =< 9 -> leaf();
        10 -> list_to_tuple([term(D - 1) || _ <- seq(len())]);
        11 -> [term(D - 1) || _ <- seq(len())];
        12 -> [term(D - 1) || _ <- seq(r(3))] ++ improper_tail();
        13 -> small_map(D - 1);
        14 -> mixed_key_map(D - 1);
        15 -> closure(D - 1);
        16 -> byte_list(len() * r(8));
        17 -> unicode_list(len());
        18 -> {term(D - 1), term(D - 1)};
        19 -> [term(D - 1) | term(D - 1)];
        20 -> case r(25) of 1 -> big_map(D - 1); _ -> small_map(D - 1) end;
        21 -> #{atom() => term(D - 1)};
        22 -> bitstring(r(64));
        23 -> {atom(), term(D - 1), term(D - 1)};
        24 -> [integer() || _ <- seq(len())]
    end.

improper_tail() -> pick([a, 1, 2.5, <<"t">>, {}, #{}, self()]).

leaf() ->
    case r(16) of
        N when N =< 4 -> integer();
        N when N =< 6 -> float();
        N when N =< 9 -> atom();
        10 -> [];
        11 -> binary(r(20) - 1);
        12 -> byte_list(r(10));
        13 -> pid_port_ref();
        14 -> {};
        15 -> export_fun();
        16 -> #{}
    end.

integer() ->
    case r(12) of
        1 -> r(256) - 1;
        2 -> -r(256);
        3 -> pick(edge_integers());
        4 -> r(1 bsl 32) - (1 bsl 31) - 1;
        5 -> r(1 bsl 64) - (1 bsl 63) - 1;
        6 -> sign() * (r(1 bsl 64) - 1);
        7 -> sign() * r(1 bsl 28);
        8 -> bignum(r(30));
        9 -> bignum(r(300));
        10 -> case r(20) of 1 -> bignum(800 + r(1200)); _ -> bignum(r(12)) end;
        _ -> r(100000) - 50000
    end.

sign() -> pick([1, -1]).

bignum(Bytes) -> sign() * binary:decode_unsigned(rand:bytes(Bytes)).

edge_integers() ->
    P = fun(N) -> 1 bsl N end,
    Pos = [0, 1, 127, 128, 255, 256, 65535, 65536, P(27) - 1, P(27),
           P(31) - 1, P(31), P(32) - 1, P(32), P(59) - 1, P(59), P(63) - 1,
           P(63), P(64) - 1, P(64), P(2040) - 1, P(2040), P(8 * 300),
           factorial(400)],
    Pos ++ [-X || X <- Pos, X =/= 0].

factorial(0) -> 1;
factorial(N) -> N * factorial(N - 1).

float() ->
    case r(7) of
        1 -> pick(special_floats());
        2 -> random_bits_float();
        3 -> (rand:uniform() - 0.5) * 1000;
        4 -> float(r(1 bsl 53) * sign());
        5 -> rand:uniform() * math:pow(10, r(600) - 300) * sign();
        6 -> r(100000) / 100;
        7 -> float(r(1000))
    end.

special_floats() ->
    [0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1 / 3, 2 / 3, 1.0e300, -1.0e300,
     5.0e-324, -5.0e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
     1.7976931348623157e308, -1.7976931348623157e308, 1.0e15, 1.0e16,
     1.0e17, 1.0e21, 1.0e22, 1.0e23, 9007199254740992.0, 9007199254740993.0,
     123456789012345680.0, 1.0e-4, 1.0e-5, 0.001, 100.0, 1.5e-7, 3.14159,
     1.2345678901234567e22].

%% Any finite double, from a uniformly random bit pattern.
random_bits_float() ->
    case <<(r(1 bsl 64) - 1):64>> of
        <<F:64/float>> -> F;
        _ -> random_bits_float() % NaN or infinity
    end.

atom() ->
    case r(10) of
        N when N =< 3 -> pick(special_atoms());
        4 -> list_to_atom(identifier(r(12)));
        5 -> list_to_atom(identifier(r(40)));
        6 -> list_to_atom([r(256) - 1 || _ <- seq(r(12) - 1)]);
        7 -> list_to_atom([codepoint() || _ <- seq(r(10) - 1)]);
        8 -> long_atom();
        _ -> pick([ok, error, true, false, undefined, a, b, x, y, foo])
    end.

identifier(N) ->
    [$a + r(26) - 1 | [pick("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@")
                       || _ <- seq(N - 1)]].

%% Atoms at the 255-character limit, most of them only occasionally.
long_atom() ->
    case r(8) of
        1 -> list_to_atom(identifier(255));
        2 -> list_to_atom([r(96) + 159 || _ <- seq(255)]);        % latin-1
        3 -> list_to_atom([16#10000 + r(16#FFFFF) - 1 || _ <- seq(255)]); % 4-byte UTF-8
        4 -> list_to_atom([codepoint() || _ <- seq(255)]);
        _ -> list_to_atom(identifier(r(60)))
    end.

codepoint() ->
    case r(5) of
        1 -> r(128) - 1;
        2 -> r(128) + 127;
        3 -> r(16#D800 - 256) + 255;
        4 -> 16#E000 + r(16#2000) - 1;
        5 -> 16#10000 + r(16#100000) - 1
    end.

special_atoms() ->
    ['', ' ', 'Hello', 'hello world', 'it\'s', 'a\nb', 'tab\there', 'back\\slash',
     'quote"d', 'a-b', 'a.b', 'a@b', '@', '_x', '_', 'X', 'Xyz', '9lives',
     'é', 'ÿ', 'Ärger', 'straße', 'µ', '×', 'çava', 'a\x{7f}b',
     '\x{80}', '\x{9f}', '\x{a0}', '\x{ad}', 'привет', '日本語', '\x{1F600}',
     '\x{10FFFF}', 'a\x{100}', 'Ωmega', 'αβγ', 'ok', 'nonode@nohost',
     'after', 'and', 'andalso', 'band', 'begin', 'bnot', 'bor', 'bsl', 'bsr',
     'bxor', 'case', 'catch', 'cond', 'div', 'end', 'fun', 'if', 'let', 'not',
     'of', 'or', 'orelse', 'receive', 'rem', 'try', 'when', 'xor', 'maybe',
     'else', 'true', 'false', 'undefined', 'nil', 'ok_ÿ', 'aÀ', 'ßx', 'ªº',
     'a\x{0}b', '\e', '\d', '$', '\''].

byte_list(N) ->
    case r(3) of
        1 -> [r(256) - 1 || _ <- seq(N)];
        _ -> [r(95) + 31 || _ <- seq(N)] % printable: ~w still prints numbers
    end.

unicode_list(N) -> [codepoint() || _ <- seq(N)].

binary(N) -> rand:bytes(N).

bitstring(Bits) ->
    Whole = Bits div 8,
    Rest = Bits rem 8,
    B = rand:bytes(Whole),
    <<B/binary, (r(1 bsl 8) - 1):Rest>>.

small_map(D) -> maps:from_list([{key(D), term(D)} || _ <- seq(len() rem 33)]).

big_map(D) ->
    N = case r(4) of 1 -> 33; 2 -> 32; _ -> 33 + r(80) end,
    maps:from_list([{key(D), term(D - 1)} || _ <- seq(N)]).

key(D) ->
    case r(4) of
        1 -> term(D - 1);
        2 -> integer();
        _ -> leaf()
    end.

%% Keys that differ only in number type: map order puts all integers first.
mixed_key_map(D) ->
    Keys = [1, 1.0, 2, 1.5, -1, -1.0, 0, 0.0, 1 bsl 70, float(1 bsl 70), a,
            "a", <<"a">>, {1}, {1.0}, [1], [1.0], {1, 2.0}, {1.0, 1}, #{1 => 1},
            #{1.0 => 1}, [1 | 2.0], [1.0 | 2], 255, 255.0, 256, -2, -1.5],
    maps:from_list([{pick(Keys), term(D)} || _ <- seq(r(8))]).

%% ---- pids, ports, refs, funs ---------------------------------------------

make_pool() ->
    Pids = [spawn(fun idle/0) || _ <- seq(4)],
    Refs = [make_ref(), monitor(process, hd(Pids)), alias(), make_ref()],
    #{pids => [self() | Pids], ports => erlang:ports(), refs => Refs}.

idle() -> receive stop -> ok end.

pid_port_ref() ->
    Pool = get(pool),
    case r(12) of
        1 -> self();
        2 -> pick(maps:get(pids, Pool));
        3 -> pick(maps:get(ports, Pool));
        4 -> local_ref(); % not make_ref(): its value would change the corpus
        5 -> local_ref();
        6 -> local_pid();
        7 -> local_port();
        8 -> local_ref();
        9 -> foreign_pid();
        10 -> foreign_port();
        11 -> foreign_ref();
        12 -> pick(maps:get(ports, Pool))
    end.

local_pid() ->
    list_to_pid(lists:flatten(io_lib:format("<0.~w.~w>", [r(32768) - 1, r(8192) - 1]))).

local_port() ->
    N = case r(3) of 1 -> r(100); 2 -> r(1 bsl 16); 3 -> r(1 bsl 27) - 1 end,
    try list_to_port(lists:flatten(io_lib:format("#Port<0.~w>", [N])))
    catch error:badarg -> pick(maps:get(ports, get(pool)))
    end.

%% Local ref words as erts accepts them: the low 16 bits of the middle word
%% name a scheduler (0 or 1 exist on any machine), the last word has 18 bits.
local_ref() ->
    Middle = ((r(1 bsl 16) - 1) bsl 16) bor (r(2) - 1),
    Text = io_lib:format("#Ref<0.~w.~w.~w>", [u32(), Middle, r(1 bsl 18) - 1]),
    list_to_ref(lists:flatten(Text)).

foreign_node() ->
    pick(['a@b', 'foo@host.example.com', 'x@y', 'node_ü@h', 'ĉu@ĉi', 'Z@1',
          'very_long_node_name_with_many_characters_in_it@some.host.example.org']).

node_atom(Node) ->
    B = atom_to_binary(Node, utf8),
    <<119, (byte_size(B)), B/binary>>.

u32() -> r(1 bsl 32) - 1.

foreign(Bytes, Fallback) ->
    case safe_decode(<<131, Bytes/binary>>) of
        {ok, T} -> T;
        error -> Fallback()
    end.

foreign_pid() ->
    N = node_atom(foreign_node()),
    foreign(<<88, N/binary, (u32()):32, (u32()):32, (u32()):32>>, fun self/0).

foreign_port() ->
    N = node_atom(foreign_node()),
    Bytes = case r(2) of
                1 -> <<89, N/binary, (u32()):32, (u32()):32>>;
                2 -> <<120, N/binary, (r(1 bsl 64) - 1):64, (u32()):32>>
            end,
    foreign(Bytes, fun() -> pick(maps:get(ports, get(pool))) end).

foreign_ref() ->
    N = node_atom(foreign_node()),
    Len = r(5),
    Words = << <<(u32()):32>> || _ <- seq(Len) >>,
    foreign(<<90, Len:16, N/binary, (u32()):32, Words/binary>>,
            fun() -> list_to_ref("#Ref<0.1.2.3>") end).

export_fun() ->
    case r(5) of
        1 -> fun lists:map/2;
        2 -> fun erlang:'+'/2;
        3 -> fun erlang:node/0;
        _ -> erlang:make_fun(atom(), atom(), r(256) - 1)
    end.

%% Local funs, with and without free variables.
closure(D) ->
    X = term(D),
    Y = term(D),
    case r(6) of
        1 -> fun() -> X end;
        2 -> fun(A) -> {A, X, Y} end;
        3 -> fun(A, B) -> [A, B, X] end;
        4 -> fun idle/0;
        5 -> fun(_) -> ok end;
        6 -> fun(A, B, C) -> {X, A + B + C} end
    end.

%% ---- small changes, for close ordering pairs --------------------------------

mutate(T) when is_integer(T) ->
    case r(5) of
        1 -> T + 1;
        2 -> T - 1;
        3 when abs(T) < 1 bsl 53 -> float(T); % == but not =:=
        4 -> T * 256;
        _ -> -T
    end;
mutate(T) when is_float(T) ->
    case r(4) of
        1 when abs(T) < 1.0e18 -> trunc(T);
        2 when abs(T) < 1.0e300 -> T * 2;
        3 -> T / 2;
        _ -> -T
    end;
mutate(T) when is_atom(T) ->
    L = atom_to_list(T),
    case r(3) of
        1 when length(L) < 255 -> list_to_atom(L ++ "a");
        2 when L =/= [] -> list_to_atom(lists:droplast(L));
        _ -> atom()
    end;
mutate(T) when is_tuple(T), tuple_size(T) > 0 ->
    I = r(tuple_size(T)),
    case r(4) of
        1 -> erlang:append_element(T, leaf());
        _ -> setelement(I, T, mutate(element(I, T)))
    end;
mutate([H | Tl] = T) ->
    case r(3) of
        1 -> [mutate(H) | Tl];
        2 -> [H | mutate(Tl)];
        3 -> [leaf() | T]
    end;
mutate(T) when is_binary(T), byte_size(T) > 0 ->
    S = byte_size(T) - 1,
    <<Head:S/binary, Last>> = T,
    case r(3) of
        1 -> <<Head/binary, ((Last + 1) band 255)>>;
        2 -> Head;
        3 -> <<T/binary, (r(256) - 1)>>
    end;
mutate(T) when is_bitstring(T) -> <<T/bitstring, (r(2) - 1):1>>;
mutate(T) when is_map(T), map_size(T) > 0 ->
    K = pick(lists:sort(maps:keys(T))), % not hash order: keeps seeds reproducible
    case r(3) of
        1 -> T#{K := mutate(maps:get(K, T))};
        2 -> maps:remove(K, T);
        3 -> T#{leaf() => leaf()}
    end;
mutate(_) ->
    leaf().

%% ---- fixed edge cases --------------------------------------------------------

specials() ->
    Pool = get(pool),
    lists:append(
      [edge_integers(), special_floats(), special_atoms(),
       [[], {}, <<>>, #{}, [[]], {{}}, [<<>>], {[]}, #{[] => {}}],
       [list_to_tuple(seq(255)), list_to_tuple(seq(256)),
        list_to_tuple(lists:duplicate(70000, a))],
       [[X rem 256 || X <- seq(65535)], [X rem 256 || X <- seq(65536)],
        lists:duplicate(65535, 255) ++ [256], lists:seq(1, 100000),
        "hello", [0], [255], [256], [-1], [1.0], [$a | b], [0 | 255]],
       [[1 | 2], [a, b | c], [1, 2 | <<>>], ["a" | "b"], [[] | []],
        [1 | [2 | [3 | 4]]], [x | 1.5], [{} | #{}]],
       [rand:bytes(1 bsl 20), <<0:(8 bsl 20)>>,
        <<(rand:bytes(1 bsl 18))/binary, 21:5>>, <<1:1>>, <<127:7>>, <<0:3>>,
        <<"abc", 1:4>>, <<"binary">>, <<0, 255, 128>>],
       [maps:from_list([{X, X} || X <- seq(33)]),
        maps:from_list([{X, X} || X <- seq(32)]),
        maps:from_list([{key(2), term(2)} || _ <- seq(100)]),
        maps:from_list([{X, <<X:16>>} || X <- seq(1000)]),
        #{big => maps:from_list([{X, [X]} || X <- seq(40)]), small => #{a => 1}},
        maps:from_list([{pick([X, float(X), integer_to_list(X), <<X>>, {X}]), X}
                        || X <- seq(32)]),
        #{1 => a, 1.0 => b}, #{2 => a, 1.5 => b}, #{{1} => a, {1.0} => b},
        #{{1, 2.0} => a, {1.0, 1} => b}, #{[1 | 2.0] => a, [1.0 | 2] => b},
        #{#{1 => a} => x, #{1.0 => a} => y}, #{-0.0 => z, 0 => y},
        #{a => 1, <<"a">> => 2, "a" => 3, {a} => 4, [a] => 5, 1 => 6,
          1.0 => 7, #{} => 8, {} => 9, [] => 10, <<>> => 11, self() => 12,
          make_ref() => 13, fun lists:map/2 => 14}],
       [deep(list, 10000), deep(tuple, 5000), deep(map, 2000),
        deep(mixed, 3000), deep(improper, 4000), deep(bigmap, 300)],
       maps:get(pids, Pool), maps:get(ports, Pool), maps:get(refs, Pool),
       [local_pid() || _ <- seq(5)], [local_port() || _ <- seq(5)],
       [local_ref() || _ <- seq(5)], [foreign_pid() || _ <- seq(5)],
       [foreign_port() || _ <- seq(6)], [foreign_ref() || _ <- seq(8)],
       [fun lists:map/2, fun erlang:'+'/2, erlang:make_fun('Mod', 'f x', 1),
        erlang:make_fun('é', 'ü', 255), erlang:make_fun(a, b, 0),
        fun idle/0, fun(A) -> A end, closure(2), closure(2), closure(3),
        {fun lists:map/2, closure(1)}],
       [lists:duplicate(1000, {hello, "world", 1.5}),
        {pid_port_ref(), [pid_port_ref() || _ <- seq(10)]}],
       %% consecutive pairs: the checker reports the order of neighbours
       [1, 1.0, 1, 2, 1.5, 2, 1.0e300, 1 bsl 1000, -1 bsl 1000, -1.0e300,
        {1, 2.0}, {1.0, 1}, {1, 2.0}, [1 | 2.0], [1.0 | 2], 0.0, -0.0, 0,
        -0.0, a, 1, a, b, 'B', a, 'a\x{100}', 'é', 'z', {a, b}, {a, b, c},
        {b}, [a], [a, b], "ab", [$a, $b | c], "b", <<1>>, <<1:1>>, <<1, 0:1>>,
        <<1>>, <<>>, <<0:1>>, #{}, #{a => 1}, #{b => 0}, #{a => 2},
        #{a => 1, b => 1}, #{c => 0}, #{1 => a}, #{1.0 => a}, #{1 => b},
        {}, [], #{}, <<>>, 1 bsl 64, 1 bsl 64 + 1, float(1 bsl 64),
        -(1 bsl 64), -(1 bsl 64) - 1, 1 bsl 63, -(1 bsl 63), -(1 bsl 63) - 1,
        hd(maps:get(pids, Pool)), foreign_pid(), foreign_pid(),
        hd(maps:get(refs, Pool)), foreign_ref(), foreign_ref(),
        make_ref(), make_ref(), local_port(), foreign_port(), foreign_port(),
        fun lists:map/2, fun lists:map/3, fun lists:foldl/3,
        fun idle/0, closure(1), fun lists:map/2],
       one_word_ref_maps()]).

%% Maps of > 32 keys with a reference of another node whose id is ONE word:
%% erts 13.1.5 decodes such a map with that key where its own lookups do not
%% find it, so two decodings of the same pairs in different orders (ours are
%% in key order, erts' in hash order) need not be =:= (see same_term/4).
%% Fixed bytes: the same records in every run.
one_word_ref_maps() ->
    Ref = fun(Id) ->
                  binary_to_term(<<131, 90, 1:16, 100, 3:16, "a@b", 16#0F401A26:32,
                                   Id:32>>)
          end,
    [maps:from_list([{Ref(Id), r} | [{X, X} || X <- seq(N)]])
     || {Id, N} <- [{16#660861E7, 40}, {1, 33}, {16#FFFFFFFF, 100}, {7, 1000}]] ++
        [#{big => maps:from_list([{{Ref(Id)}, Id} || Id <- seq(40)])}].

deep(Kind, N) -> lists:foldl(fun(I, Acc) -> wrap(Kind, I, Acc) end, [], seq(N)).

wrap(list, _, T) -> [T];
wrap(tuple, _, T) -> {T};
wrap(map, _, T) -> #{a => T};
wrap(improper, I, T) -> [T | I];
wrap(bigmap, I, T) when I rem 50 =:= 0 ->
    maps:from_list([{nested, T} | [{X, X} || X <- seq(40)]]);
wrap(bigmap, _, T) -> {T};
wrap(mixed, I, T) ->
    case I rem 4 of
        0 -> [T, I];
        1 -> {I, T};
        2 -> #{I => T};
        3 -> [1.5 | T]
    end.

%% Old or non-canonical encodings that erts still decodes; the codec must read
%% them as the same terms (and re-encode them canonically).
legacy_bytes() ->
    N = node_atom('a@b'),
    L = node_atom(node()),
    FloatExt = fun(F) ->
                       S = list_to_binary(io_lib:format("~.20e", [F])),
                       <<99, S/binary, 0:((31 - byte_size(S)) * 8)>>
               end,
    Plain =
        [FloatExt(1.5), FloatExt(-0.0), FloatExt(1.0e300), FloatExt(0.1),
         FloatExt(5.0e-324), FloatExt(-123.456), FloatExt(1.0e-300),
         <<115, 2, "h", 233>>, <<115, 0>>, <<115, 3, "abc">>,
         <<100, 0, 3, "a", 255, "b">>, <<100, 0, 0>>,
         <<118, 0, 2, 195, 169>>, <<118, 0, 0>>, <<118, 0, 4, 240, 159, 152, 128>>,
         <<103, L/binary, 0, 0, 0, 5, 0, 0, 0, 1, 0>>,
         <<103, N/binary, 0, 0, 0, 5, 0, 0, 0, 1, 2>>,
         <<102, N/binary, 0, 0, 0, 5, 2>>,
         <<102, L/binary, 0, 0, 0, 5, 0>>,
         <<120, N/binary, 0:32, 0, 0, 0, 5, 0, 0, 0, 7>>,
         <<101, N/binary, 0, 0, 0, 5, 1>>,
         <<114, 0, 3, N/binary, 1, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7>>,
         <<114, 0, 1, N/binary, 3, 0, 0, 0, 9>>,
         <<98, 0, 0, 0, 5>>, <<98, 255, 255, 255, 255>>, <<98, 0, 0, 0, 0>>,
         <<110, 1, 0, 5>>, <<110, 0, 0>>, <<110, 1, 1, 0>>,
         <<110, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0>>,
         <<110, 4, 1, 0, 0, 0, 128>>, <<110, 4, 0, 255, 255, 255, 127>>,
         <<111, 0, 0, 0, 1, 1, 5>>, <<111, 0, 0, 0, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8>>,
         <<111, 0, 0, 1, 4, 0, 0:(259 * 8), 1>>,
         <<111, 0, 0, 1, 4, 0, 7, 0:(259 * 8)>>,
         <<111, 0, 0, 1, 4, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0:(251 * 8)>>,
         <<107, 0, 0>>,
         <<108, 0, 0, 0, 1, 115, 1, "x", 106>>,
         <<105, 0, 0, 0, 1, 97, 1>>, <<105, 0, 0, 0, 0>>,
         <<77, 0, 0, 0, 1, 8, 255>>, <<77, 0, 0, 0, 0, 0>>,
         <<77, 0, 0, 0, 1, 3, 255>>, <<77, 0, 0, 0, 2, 4, 1, 255>>, % unused bits set
         <<104, 2, 115, 1, "a", (FloatExt(2.5))/binary>>,
         <<116, 0, 0, 0, 1, 100, 0, 1, "k", 103, L/binary, 0, 0, 0, 7, 0, 0, 0, 0, 0>>],
    [<<131, B/binary>> || B <- Plain].

%% ---- verification of our output ----------------------------------------------

verify(CorpusFile, OursFile) ->
    {ok, <<"EDC1", _Creation:32, Corpus/binary>>} = file:read_file(CorpusFile),
    {ok, <<"EDO1", Ours/binary>>} = file:read_file(OursFile),
    put(passed, 0),
    put(failed, 0),
    verify_loop(Corpus, Ours, none),
    P = get(passed),
    F = get(failed),
    [io:format("  erl ~-16s ~7w passed~n", [K, N]) || {{pass, K}, N} <- lists:sort(get())],
    io:format("erl verify: ~w passed, ~w failed~n", [P, F]),
    case F of 0 -> 0; _ -> 1 end.

verify_loop(<<>>, _Ours, _Prev) ->
    ok;
verify_loop(<<I:32, _Flags:32, L1:32, Min2:L1/binary, L2:32, _:L2/binary,
              L3:32, _:L3/binary, L4:32, Text:L4/binary, Corpus/binary>>,
            <<I:32, M1:32, Ours:M1/binary, M2:32, OursComp:M2/binary,
              M3:32, Parsed:M3/binary, M4:32, Printed:M4/binary, Cmp,
              Rest/binary>>, Prev) ->
    T = binary_to_term(Min2),
    same_term(I, "binary_to_term(our encoding)", Ours, T),
    same_term(I, "binary_to_term(our compressed)", OursComp, T),
    case Parsed of
        <<>> -> ok;
        _ -> same_term(I, "binary_to_term(our parse of ~w)", <<131, Parsed/binary>>, T)
    end,
    readable(Printed, T) andalso reads_back(I, Printed, Text, T),
    case Prev of
        {PI, PT} when Cmp =/= 255 -> check_order(PI, PT, T, Cmp);
        _ -> ok
    end,
    verify_loop(Corpus, Rest, {I, T});
verify_loop(<<I:32, _/binary>>, _Ours, _Prev) ->
    fail(I, "checker output missing or out of step from here on", []).

same_term(_I, _What, <<>>, _T) ->
    ok; % the checker could not produce it and has counted that already
same_term(I, What, Bytes, T) ->
    try binary_to_term(Bytes) of
        T2 when T2 =:= T -> pass(binary_to_term);
        T2 ->
            case (has_lost_key(T) orelse has_lost_key(T2)) andalso same_pairs(T2, T) of
                true -> pass(b2t_lost_key);
                false -> fail(I, What, [{got, T2}, {want, T}])
            end
    catch
        error:badarg -> fail(I, What ++ " raised badarg", [{bytes, Bytes}])
    end.

%% erts 13.1.5 hashes a reference of another node whose id is one word
%% differently while binary_to_term builds a map of > 32 keys than when it
%% looks a key up: the decoded map holds the key where maps:is_key/2 does not
%% find it, and =:= (which compares hash maps node by node) then depends on
%% the order the pairs were encoded in: erts writes hash order, we key order.
%% Only for such maps (found by the defect itself: a key its own map does not
%% find, in either decoded term: which one shows it depends on the encoded
%% order and on where the node's atom landed in this run) are the terms
%% compared as the same pairs, keys and values exactly.
has_lost_key(T) -> lost_key([T]).

lost_key([]) -> false;
lost_key([T | Rest]) when is_list(T) -> lost_key(cons_items(T, Rest));
lost_key([T | Rest]) when is_tuple(T) -> lost_key(tuple_to_list(T) ++ Rest);
lost_key([T | Rest]) when is_map(T) ->
    Keys = maps:keys(T),
    lists:any(fun(K) -> not maps:is_key(K, T) end, Keys) orelse
        lost_key(Keys ++ maps:values(T) ++ Rest);
lost_key([_ | Rest]) -> lost_key(Rest).

same_pairs(A, B) when is_map(A), is_map(B) ->
    %% Pairs in exact key order: keys of one map are never =:=, so the order
    %% is unique (term order would tie 1 and 1.0).
    InOrder = fun(M) ->
                      lists:sort(fun({X, _}, {Y, _}) -> exact_order(X, Y) =< 0 end,
                                 maps:to_list(M))
              end,
    map_size(A) =:= map_size(B) andalso
        lists:all(fun({{KA, VA}, {KB, VB}}) ->
                          same_pairs(KA, KB) andalso same_pairs(VA, VB)
                  end,
                  lists:zip(InOrder(A), InOrder(B)));
same_pairs(A, B) when is_tuple(A), is_tuple(B) ->
    tuple_size(A) =:= tuple_size(B) andalso
        same_pairs(tuple_to_list(A), tuple_to_list(B));
same_pairs([HA | TA], [HB | TB]) ->
    same_pairs(HA, HB) andalso same_pairs(TA, TB);
same_pairs(A, B) ->
    A =:= B.

%% Our ~w text, read by erl_scan/erl_parse, must give the term: this checks
%% the printer independently of our parser, maps of > 32 keys included.
%% Only for terms without pids, ports, refs and funs (no text syntax) and
%% of moderate size (erl_scan is slow on megabytes).
readable(Printed, T) ->
    byte_size(Printed) > 0 andalso byte_size(Printed) < 65536 andalso
        no_opaque([T]).

no_opaque([]) -> true;
no_opaque([T | Rest]) when is_list(T) -> no_opaque(cons_items(T, Rest));
no_opaque([T | Rest]) when is_tuple(T) -> no_opaque(tuple_to_list(T) ++ Rest);
no_opaque([T | Rest]) when is_map(T) ->
    no_opaque(maps:keys(T) ++ maps:values(T) ++ Rest);
no_opaque([T | _]) when is_pid(T); is_port(T); is_reference(T);
                        is_function(T) -> false;
no_opaque([_ | Rest]) -> no_opaque(Rest).

reads_back(I, Printed, OtpText, T) ->
    What = "our ~w text read by erl_parse",
    try read_term(Printed) of
        V when V =:= T -> pass(read_text);
        V -> fail(I, What, [{got, V}, {want, T}])
    catch
        C:E ->
            %% erl_scan refuses some atoms that ~w writes (\x{FFFF} for one)
            try read_term(OtpText) of
                _ -> fail(I, What ++ " failed", [{error, {C, E}}, {text, Printed}])
            catch
                _:_ -> ok
            end
    end.

read_term(Text) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Text) ++ "."),
    {ok, [Expr]} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:expr(Expr, []),
    V.

%% Exact term order is what orders the keys of small maps (at most 32 keys
%% are kept sorted); Erlang's < is not a refinement of it ({1,2.0} > {1.0,1}
%% but {1,2.0} sorts first as a key), so only the map order is checked.
check_order(I, A, B, Cmp) ->
    Want = exact_order(A, B),
    Got = Cmp - 1,
    case Got =:= Want of
        true -> pass(order);
        false -> fail(I, io_lib:format("order of records ~w and ~w: edist ~w, erts ~w",
                                       [I, I + 1, Got, Want]), [{a, A}, {b, B}])
    end.

exact_order(A, B) when A =:= B -> 0;
exact_order(A, B) ->
    case maps:keys(#{A => 0, B => 0}) of
        [K, _] when K =:= A -> -1;
        [_, _] -> 1
    end.

pass(Kind) ->
    put(passed, get(passed) + 1),
    put({pass, Kind}, case get({pass, Kind}) of undefined -> 1; N -> N + 1 end).

fail(I, What, Detail) ->
    N = get(failed) + 1,
    put(failed, N),
    if N =< 30 ->
            io:format("FAIL record ~w: ~ts~n", [I, What]),
            [io:format("    ~w: ~P~n", [K, V, 30]) || {K, V} <- Detail];
       N =:= 31 -> io:format("(further failures not shown)~n");
       true -> ok
    end.

%% ---- libFuzzer seeds ---------------------------------------------------------

seeds(Seed, Dir) ->
    rand:seed(exsss, Seed),
    put(pool, make_pool()),
    Subs = ["decode", "parse", "pattern"],
    [ok = filelib:ensure_dir(filename:join([Dir, S, "x"])) || S <- Subs],
    Small = fun(T) ->
                    byte_size(term_to_binary(T, [{minor_version, 2}])) < 3000 andalso
                        iolist_size(io_lib:format("~w", [T])) < 3000
            end,
    Fixed = [T || T <- specials(), Small(T)],
    Random = [T || T <- [term(3) || _ <- seq(400)], Small(T)],
    Terms = lists:sublist(Fixed, 150) ++ lists:sublist(Random, 250),
    Legacy = legacy_bytes(),
    Count = lists:foldl(fun(T, I) -> write_seeds(Dir, I, T), I + 1 end, 0, Terms),
    lists:foldl(fun(B, I) -> write_file(Dir, "decode", I, B), I + 1 end, Count, Legacy),
    io:format("seeds: ~w terms, ~w legacy encodings under ~s~n",
              [Count, length(Legacy), Dir]),
    0.

write_seeds(Dir, I, T) ->
    Min2 = term_to_binary(T, [{minor_version, 2}]),
    Ext = case I rem 4 of
              0 -> Min2;
              1 -> term_to_binary(T);
              2 -> term_to_binary(T, [compressed]);
              3 -> binary:part(Min2, 1, byte_size(Min2) - 1) % no version byte
          end,
    write_file(Dir, "decode", I, Ext),
    write_file(Dir, "parse", I, unicode:characters_to_binary(io_lib:format("~w", [T]))),
    %% pattern fuzzer input: pattern text, a 0 byte, then an external term
    Target = case r(4) of 1 -> term_to_binary(term(2)); _ -> Min2 end,
    Pattern = pattern_text(T),
    case byte_size(Pattern) + byte_size(Target) < 4000 of
        true -> write_file(Dir, "pattern", I, [Pattern, 0, Target]);
        false -> ok
    end.

write_file(Dir, Sub, I, Data) ->
    Name = filename:join([Dir, Sub, io_lib:format("seed_~5..0w", [I])]),
    ok = file:write_file(Name, Data).

%% ~w text of T with some subterms replaced by variables.
pattern_text(T) ->
    Marked = mark(T, 0),
    Text = unicode:characters_to_binary(io_lib:format("~w", [Marked])),
    lists:foldl(fun(Name, Acc) ->
                        Marker = <<"'$var_", Name/binary, "'">>,
                        binary:replace(Acc, Marker, Name, [global])
                end, Text, [<<"_">>, <<"X">>, <<"Y">>, <<"_Z">>, <<"Ref">>]).

mark(T, Depth) ->
    case r(5) of
        1 when Depth > 0 ->
            list_to_atom("$var_" ++ pick(["_", "X", "Y", "_Z", "Ref"]));
        _ when is_tuple(T) ->
            list_to_tuple([mark(E, Depth + 1) || E <- tuple_to_list(T)]);
        _ when is_list(T) ->
            try [mark(E, Depth + 1) || E <- T] catch error:_ -> T end;
        _ when is_map(T) ->
            maps:map(fun(_, V) -> mark(V, Depth + 1) end, T);
        _ -> T
    end.
