#ifndef CTTUNE_CNFTABLES_H
#define CTTUNE_CNFTABLES_H

/*
 * libnftables, the library nft itself is built on: cttune writes its own
 * table with it in one transaction instead of running `nft` and parsing
 * its text. Seen only by Sources/TunerSystem/Nftables/NftContext.swift.
 */
#include <nftables/libnftables.h>

#endif
