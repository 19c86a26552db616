"""MetalLB custom resources generated from the inventory's pools and BGP peers.

One IPAddressPool per pool; one L2Advertisement naming every l2 pool; one
BGPPeer per router; one BGPAdvertisement naming every bgp pool. Field names are
those of the metallb.io CRDs at the pinned MetalLB version (IPAddressPool,
L2Advertisement, BGPAdvertisement v1beta1; BGPPeer v1beta2).
"""

from __future__ import annotations

LABELS = {"app.kubernetes.io/part-of": "ml-platform", "platform.ml/layer": "network"}


def _meta(name, namespace):
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def metallb_resources(pools, peers=None, namespace="metallb-system", l2_interfaces=None):
    """The MetalLB objects for the pools and peers, in apply order."""
    pools = list(pools or [])
    peers = list(peers or [])
    docs = []
    for pool in pools:
        addresses = pool["addresses"] if isinstance(pool["addresses"], list) else [pool["addresses"]]
        docs.append(
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": _meta(pool["name"], namespace),
                "spec": {"addresses": [str(a).replace(" ", "") for a in addresses], "autoAssign": bool(pool.get("auto_assign", True))},
            }
        )
    l2 = sorted(p["name"] for p in pools if p.get("mode") == "l2")
    bgp = sorted(p["name"] for p in pools if p.get("mode") == "bgp")
    if l2:
        spec = {"ipAddressPools": l2}
        if l2_interfaces:
            spec["interfaces"] = list(l2_interfaces)
        docs.append({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": _meta("platform-l2", namespace), "spec": spec})
    if bgp:
        for peer in peers:
            spec = {"myASN": int(peer["my_asn"]), "peerASN": int(peer["peer_asn"]), "peerAddress": str(peer["peer_address"])}
            if peer.get("peer_port"):
                spec["peerPort"] = int(peer["peer_port"])
            if peer.get("hold_time"):
                spec["holdTime"] = str(peer["hold_time"])
            if peer.get("password_secret"):
                spec["passwordSecret"] = {"name": str(peer["password_secret"]), "namespace": namespace}
            docs.append({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": _meta(peer["name"], namespace), "spec": spec})
        docs.append({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": _meta("platform-bgp", namespace), "spec": {"ipAddressPools": bgp}})
    return docs


class FilterModule:
    def filters(self):
        return {"network_metallb_resources": metallb_resources}
