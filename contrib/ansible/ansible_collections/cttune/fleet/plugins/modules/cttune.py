#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module wrapping `cttune apply` and `cttune rollback`."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cttune
short_description: Size Linux connection tracking (nf_conntrack) for a load profile with cttune
description:
  - Runs C(cttune apply --format json) on the managed host so nf_conntrack_max, the
    conntrack hash size and the conntrack timeouts match a load profile, in the
    running kernel and in the boot-time files (sysctl.d, modprobe.d, modules-load.d).
  - C(changed) is cttune's own verdict, so a second run with the same parameters
    reports no change. Failures carry cttune's message, which names the setting or
    file and the fix; cttune undoes a failed apply as a whole.
  - With O(state=absent) every change cttune made is undone (C(cttune rollback --all)): the
    values, files and modules are back as before its first apply and every file it created is
    removed. A second run reports no change.
version_added: "0.1.0"
author: the cttune authors
options:
  profile:
    description: Built-in profile name, a name found in /etc/cttune/profiles, or a path to a profile file on the managed host.
    type: str
    default: default
  memory:
    description: Plan for this much RAM instead of the host's (bytes, or a number with K, M, G, T).
    type: str
  cpus:
    description: Plan for this many CPUs instead of the host's online CPUs.
    type: int
  runtime:
    description: Write the settings to the running kernel. V(false) is C(--persist-only).
    type: bool
    default: true
  persist:
    description: Write the boot-time files. V(false) is C(--runtime-only).
    type: bool
    default: true
  allow_partial:
    description:
      - Succeed when settings that cannot be changed here were skipped (the global
        nf_conntrack_max and hash size outside the initial network namespace, for example
        in a container). They are listed as warnings.
    type: bool
    default: false
  on_conflict:
    description:
      - What to do when another file read after cttune's at boot (for example
        C(/etc/sysctl.conf) through Debian's C(/etc/sysctl.d/99-sysctl.conf) link, where
        M(ansible.posix.sysctl) writes) sets a key cttune plans. V(warn) applies and
        reports each such line as a warning; V(refuse) changes nothing and fails;
        V(override) names cttune's file C(99-zz-cttune.conf) so it is read last.
        cttune never edits the other file.
    type: str
    choices: [warn, refuse, override]
    default: warn
  state:
    description: V(present) applies the plan; V(absent) restores the state before cttune's first apply (C(cttune rollback --all)).
    type: str
    choices: [present, absent]
    default: present
  root:
    description: Treat this directory on the managed host as / (image builds).
    type: path
  lock_timeout:
    description: Seconds to wait for another cttune apply or rollback to finish.
    type: float
  executable:
    description: The cttune binary, a name looked up in PATH or a path.
    type: path
    default: cttune
attributes:
  check_mode:
    support: full
    details: Runs C(cttune apply --check) or C(cttune rollback --all --check), which write nothing.
  diff_mode:
    support: full
notes:
  - Needs root on the managed host to change kernel settings (use C(become)).
"""

EXAMPLES = r"""
- name: Size conntrack for a web frontend
  become: true
  cttune.fleet.cttune:
    profile: web-frontend

- name: Only the running kernel, inside a container (global settings skipped)
  cttune.fleet.cttune:
    profile: kubernetes-node
    persist: false
    allow_partial: true

- name: Undo everything cttune changed (idempotent)
  become: true
  cttune.fleet.cttune:
    state: absent
"""

RETURN = r"""
settings:
  description: Each setting with its key, current and planned values, reason and result (applied, unchanged, skipped, failed, rolled-back; null in check mode).
  returned: state is present
  type: list
  elements: dict
files:
  description: Boot-time files with their path and action (created, updated, unchanged, removed).
  returned: state is present
  type: list
  elements: dict
journal_id:
  description: The journal entry of this change, for C(cttune rollback ID); null when nothing changed (or in check mode).
  returned: always
  type: str
notes:
  description: What cttune could not do itself, for example a kernel command line parameter to add.
  returned: state is present
  type: list
  elements: str
restored:
  description: What the rollback restored, each with type (sysctl, file, module), target, before, after (a value, a size in bytes, loaded or unloaded; null when absent) and result.
  returned: state is absent and something was rolled back
  type: list
  elements: dict
cttune:
  description: The whole JSON object cttune printed.
  returned: when cttune printed one
  type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule

ERROR_PREFIX = "cttune: error: "


def run_json(module, arguments):
    """Runs cttune; returns (exit code, parsed JSON or None, stderr)."""
    rc, out, err = module.run_command(arguments)
    try:
        report = json.loads(out) if out.strip() else None
    except ValueError:
        report = None
    return rc, report, err


def failure_message(report, err, rc):
    """cttune's own message: the JSON `error`, else its stderr line, with
    the reasons of the settings it skipped (which the text output prints above)."""
    error = (report or {}).get("error")
    if error:
        lines = [error["message"]]
    else:
        lines = [line[len(ERROR_PREFIX):] if line.startswith(ERROR_PREFIX) else line
                 for line in err.strip().splitlines()]
    skipped = ["%s: %s" % (s["key"], s.get("error_message")) for s in (report or {}).get("settings", [])
               if s.get("result") == "skipped" and s.get("current") != s.get("planned")]
    return "\n".join(lines + skipped) or "cttune exited with %d and printed no message" % rc


def common_arguments(params):
    arguments = []
    if params["root"]:
        arguments += ["--root", params["root"]]
    if params["lock_timeout"] is not None:
        arguments += ["--lock-timeout", str(params["lock_timeout"])]
    return arguments


def settings_diff(settings):
    """Kernel values before and after, for Ansible's diff output."""
    changing = [s for s in settings if s.get("current") != s.get("planned") and s.get("result") not in ("skipped", "failed")]
    if not changing:
        return None
    return {
        "before_header": "kernel settings (before)",
        "after_header": "kernel settings (after)",
        "before": "".join("%s = %s\n" % (s["key"], s.get("current")) for s in changing),
        "after": "".join("%s = %s\n" % (s["key"], s["planned"]) for s in changing),
    }


def restored_state(item, side):
    """One side of a restored item for the diff: a setting's value, a file's
    size, a module's state, or "absent" (JSON null)."""
    value = item.get(side)
    if value is None:
        return "absent"
    if item.get("type") == "file":
        return "%d bytes" % value
    return str(value)


def apply(module, binary):
    params = module.params
    arguments = [binary, "apply", "--format", "json", "--profile", params["profile"]]
    if params["memory"]:
        arguments += ["--memory", params["memory"]]
    if params["cpus"] is not None:
        arguments += ["--cpus", str(params["cpus"])]
    if not params["persist"]:
        arguments.append("--runtime-only")
    if not params["runtime"]:
        arguments.append("--persist-only")
    if params["allow_partial"]:
        arguments.append("--allow-partial")
    if params["on_conflict"] != "warn":
        arguments += ["--on-conflict", params["on_conflict"]]
    if module.check_mode:
        arguments.append("--check")
    if module._diff:
        arguments.append("--diff")
    arguments += common_arguments(params)

    rc, report, err = run_json(module, arguments)
    if rc != 0 or report is None:
        # A refused partial apply has still changed what it could: say so.
        module.fail_json(msg=failure_message(report, err, rc), changed=bool(report and report.get("changed")),
                         rc=rc, stderr=err, cttune=report, cmd=arguments)

    settings = report.get("settings", [])
    for setting in settings:
        if setting.get("result") == "skipped" and setting.get("current") != setting.get("planned"):
            module.warn("%s not changed: %s" % (setting["key"], setting.get("error_message")))
        for winner in setting.get("overridden_by") or []:
            module.warn("%s: %s:%s sets %s after cttune's %s and wins at boot; change that line or use on_conflict: override"
                        % (setting["key"], winner["path"], winner["line"], winner["value"], setting["planned"]))
    result = dict(
        changed=bool(report.get("changed")),
        settings=settings,
        files=[{"path": f["path"], "action": f["action"]} for f in report.get("files", [])],
        journal_id=report.get("journal_id"),
        notes=report.get("notes", []),
        cttune=report,
    )
    if module._diff:
        diffs = [{"prepared": f["diff"]} for f in report.get("files", []) if f.get("diff")]
        values = settings_diff(settings) if params["runtime"] else None
        result["diff"] = ([values] if values else []) + diffs
    module.exit_json(**result)


def rollback(module, binary):
    """state=absent: `cttune rollback --all`, back to the state before cttune's
    first apply; a second run finds nothing to restore (changed=false)."""
    params = module.params
    arguments = [binary, "rollback", "--all", "--format", "json"] + common_arguments(params)
    if module.check_mode:
        arguments.append("--check")
    rc, report, err = run_json(module, arguments)
    if rc != 0 or report is None:
        module.fail_json(msg=failure_message(report, err, rc), rc=rc, stderr=err, cttune=report, cmd=arguments)
    restored = report.get("restored", [])
    result = dict(changed=bool(report.get("changed")), journal_id=report.get("journal_id"),
                  restored=restored, cttune=report)
    if module._diff:
        changed_items = [r for r in restored if r.get("result") == "rolled-back"]
        result["diff"] = {
            "before": "".join("%s: %s\n" % (r["target"], restored_state(r, "before")) for r in changed_items),
            "after": "".join("%s: %s\n" % (r["target"], restored_state(r, "after")) for r in changed_items),
        }
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            profile=dict(type="str", default="default"),
            memory=dict(type="str"),
            cpus=dict(type="int"),
            runtime=dict(type="bool", default=True),
            persist=dict(type="bool", default=True),
            allow_partial=dict(type="bool", default=False),
            on_conflict=dict(type="str", choices=["warn", "refuse", "override"], default="warn"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            root=dict(type="path"),
            lock_timeout=dict(type="float"),
            executable=dict(type="path", default="cttune"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "present" and not params["runtime"] and not params["persist"]:
        module.fail_json(msg="runtime and persist are both false: nothing to apply — set one of them to true")
    executable = params["executable"]
    binary = executable if "/" in executable else module.get_bin_path(executable, required=True)
    if params["state"] == "present":
        apply(module, binary)
    else:
        rollback(module, binary)


if __name__ == "__main__":
    main()
