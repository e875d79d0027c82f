from __future__ import annotations

import pytest

from agent_run_id._hosts import HostAllowList, allow_list


def test_none_means_every_host() -> None:
    assert allow_list(None) is None


def test_exact_names_match_ignoring_case_and_a_trailing_dot() -> None:
    hosts = HostAllowList(["API.OpenAI.com."])
    assert hosts.allows("api.openai.com")
    assert hosts.allows("API.OPENAI.COM")
    assert hosts.allows("api.openai.com.")
    assert not hosts.allows("openai.com")
    assert not hosts.allows("api.openai.com.evil.net")
    assert not hosts.allows("xapi.openai.com")


def test_a_suffix_pattern_matches_names_below_it_at_any_depth_but_not_itself() -> None:
    hosts = HostAllowList(("*.example.com",))
    assert hosts.allows("api.example.com")
    assert hosts.allows("a.b.example.com")
    assert hosts.allows("API.Example.COM.")
    assert not hosts.allows("example.com")
    assert not hosts.allows("badexample.com")
    assert not hosts.allows("example.com.evil.net")


def test_both_kinds_together() -> None:
    hosts = HostAllowList(("example.com", "*.example.com", "127.0.0.1"))
    assert hosts.allows("example.com")
    assert hosts.allows("www.example.com")
    assert hosts.allows("127.0.0.1")
    assert not hosts.allows("127.0.0.2")


def test_ipv6_addresses_match_with_or_without_brackets() -> None:
    hosts = HostAllowList(("[::1]",))
    assert hosts.allows("::1")
    assert hosts.allows("[::1]")
    assert HostAllowList(("::1",)).allows("[::1]")


def test_an_ipv6_address_matches_however_either_side_spells_it() -> None:
    """Clients differ: httpx sends '0:0::1' as written, yarl sends '::1'."""
    assert HostAllowList(("0:0:0:0:0:0:0:1",)).allows("::1")
    assert HostAllowList(("::1",)).allows("0:0::1")
    assert HostAllowList(("[::1]",)).allows("[0000::0001]")
    assert HostAllowList(("::FFFF:127.0.0.1",)).allows("::ffff:7f00:1")
    assert HostAllowList(("::ffff:7f00:1",)).allows("::FFFF:127.0.0.1")
    assert not HostAllowList(("::1",)).allows("::2")
    assert not HostAllowList(("::1",)).allows("::zz")  # not an address: no match, no error
    assert HostAllowList(("::1",)) == HostAllowList(("0::1",))


def test_names_with_underscores_and_ipv4_addresses_are_accepted() -> None:
    hosts = HostAllowList(("svc_a.internal", "10.0.0.7", "*.k8s-1.local"))
    assert hosts.allows("svc_a.internal")
    assert hosts.allows("10.0.0.7")
    assert hosts.allows("pod.k8s-1.local")


def test_an_internationalized_name_matches_its_idna_form_as_sent_on_the_wire() -> None:
    hosts = HostAllowList(("bücher.example", "*.münchen.de"))
    assert hosts.allows("xn--bcher-kva.example")
    assert hosts.allows("www.xn--mnchen-3ya.de")
    assert not hosts.allows("bucher.example")


def test_an_idna_name_given_in_ascii_matches_too() -> None:
    assert HostAllowList(("xn--bcher-kva.example",)).allows("XN--BCHER-KVA.example")


def test_iterating_gives_the_patterns_back_and_equality_ignores_order() -> None:
    hosts = HostAllowList(("a.example", "*.b.example"))
    assert list(hosts) == ["a.example", "*.b.example"]
    assert hosts == HostAllowList(("*.B.example", "A.example."))
    assert hash(hosts) == hash(HostAllowList(("*.b.example", "a.example")))
    assert hosts != HostAllowList(("a.example",))
    assert hosts != ("a.example", "*.b.example")
    assert allow_list(hosts) is hosts
    assert repr(hosts) == "HostAllowList(('a.example', '*.b.example'))"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("https://api.openai.com", "is a URL"),
        ("api.openai.com:443", "has a port"),
        ("*.example.com:8080", "has a port"),
        ("api.openai.com/v1", "give the host name only"),
        ("user@api.openai.com", "give the host name only"),
        ("api openai.com", "give the host name only"),
        ("[::1]:8080", "give the host name only"),
        ("*", "leave hosts=None"),
        ("*.", "leave hosts=None"),
        ("", "leave hosts=None"),
        ("api.*.com", "'*' that is not the whole first label"),
        ("*example.com", "'*' that is not the whole first label"),
        ("**.example.com", "'*' that is not the whole first label"),
        ("a..example.com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("xn--\u00e9.example", "not a valid internationalized host name"),
        ("-bad-.com", "is not a valid host name"),
        ("bad-.example.com", "is not a valid host name"),
        ("*.-bad.com", "is not a valid host name"),
        ("a" * 64 + ".example", "at most 63 characters"),
        (("a" * 60 + ".") * 5 + "example", "253 in all"),
        ("api.open!ai.com", "is not a valid host name"),
        ("1.2.3.4.5", "neither a host name nor an IPv4 address"),
        ("256.1.1.1", "neither a host name nor an IPv4 address"),
        ("0x7f.0.0.1", "neither a host name nor an IPv4 address"),
        ("*.1.2.3.4", "is an IP address after '*.'"),
        ("::zz", "is not a valid IPv6 address"),
        ("1:2:3:4:5:6:7:8:9", "is not a valid IPv6 address"),
        ("*.::1", "is an IP address after '*.'"),
    ],
)
def test_a_bad_pattern_is_refused_naming_it_and_the_fix(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="hosts pattern") as caught:
        HostAllowList((pattern,))
    assert message in str(caught.value)
    assert repr(pattern)[:20] in str(caught.value) or ascii(pattern)[:20] in str(caught.value)
    assert "pass e.g. hosts=(" in str(caught.value)


def test_a_single_string_is_refused_with_the_tuple_to_write() -> None:
    with pytest.raises(
        TypeError, match=r"not a single str 'api.openai.com'.*\('api.openai.com',\)"
    ):
        HostAllowList("api.openai.com")  # type: ignore[arg-type]


def test_a_non_iterable_or_a_non_string_pattern_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="iterable of host names or None, got int"):
        HostAllowList(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hold host names as str, got bytes"):
        HostAllowList([b"api.openai.com"])  # type: ignore[list-item]


def test_an_empty_list_is_refused_because_it_would_send_nothing() -> None:
    with pytest.raises(ValueError, match=r"hosts is empty.*hosts=None"):
        HostAllowList(())


def test_a_long_bad_pattern_is_cut_short_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"\(1008 characters\)"):
        HostAllowList(("a/" + "x" * 1006,))
