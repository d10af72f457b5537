"""The hardware catalog: names, SI values, datasheet relations."""

import pytest

from dcsim import hardware


@pytest.mark.parametrize("name", ["a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200", "gb200"])
def test_gpus_have_the_fields(name):
    g = hardware.gpu(name)
    assert g.peak("bf16") > 1e14 and g.peak("fp16") == g.peak("bf16")
    assert g.hbm_bytes > 40e9 and g.hbm_bw_bytes_per_s > 1e12
    assert g.nvlink_bw_bytes_per_s >= 300e9 and g.tdp_w >= 400


def test_datasheet_values():
    a100, h100, h200 = (hardware.gpu(n) for n in ("a100-sxm-80gb", "h100-sxm", "h200-sxm"))
    assert a100.peak("bf16") == pytest.approx(312e12)
    assert h100.peak("bf16") == pytest.approx(989.4e12)
    assert h100.peak("fp8") == pytest.approx(2 * h100.peak("bf16"), rel=1e-3)
    assert h200.peak("bf16") == h100.peak("bf16") and h200.hbm_bytes > h100.hbm_bytes
    assert h100.hbm_bw_bytes_per_s == pytest.approx(3.35e12)
    with pytest.raises(hardware.UnknownHardware, match="no fp8"):
        a100.peak("fp8")


@pytest.mark.parametrize("name,gbps", [
    ("ib-hdr-200", 200), ("ib-ndr-400", 400), ("ib-xdr-800", 800), ("roce-400", 400),
    ("roce-800", 800)])
def test_nic_rates_are_bits_converted(name, gbps):
    assert hardware.link(name).bw_bytes_per_s == pytest.approx(gbps * 1e9 / 8)


def test_nvlink_and_pcie():
    assert hardware.link("nvlink4").bw_bytes_per_s == pytest.approx(450e9)
    assert hardware.link("nvlink5").bw_bytes_per_s == 2 * hardware.link("nvlink4").bw_bytes_per_s
    assert hardware.link("pcie5").bw_bytes_per_s == pytest.approx(2 * hardware.link("pcie4").bw_bytes_per_s, rel=0.01)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(hardware.UnknownHardware, match="known: .*h100-sxm"):
        hardware.gpu("h1000")
    with pytest.raises(hardware.UnknownHardware, match="ib-ndr-400"):
        hardware.link("ib-qdr")
