"""The AWX objects of ``awx/controller.yml`` with what other files already say (each level's
name, playbook and target inputs from the level registry; survey types and choices from the
roles' argument specs and the policy's severities), and their offline validation: survey
specs by AWX's own rules, survey variables the level's playbook accepts, the escalation
workflow's graph. No AWX server is contacted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils import levels
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import SEVERITIES
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import DATA_RESTORING_LEVELS

COLLECTION = Path(levels.__file__).resolve().parents[2]
"""The collection's root (its roles' argument specs)."""

# AWX's survey question types and the Python types of their defaults: SURVEY_TYPE_MAPPING
# (awx/main/constants.py).
SURVEY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}
CHOICE_TYPES = ("multiplechoice", "multiselect")
TEXT_TYPES = ("text", "textarea", "password")
ENCRYPTED = "$encrypted$"

# What the run record callback reads from extra vars (operator facts, all optional), and
# what decide.yml asks for: inputs that are not a role's.
RUN_VARIABLES = frozenset(
    {
        "rollback_run_id",
        "rollback_reason",
        "rollback_incident",
        "rollback_level",
        "rollback_severity",
        "rollback_users_affected",
        "rollback_data_loss",
        "rollback_services",
        "rollback_decision",
        "rollback_incident_started_at",
        "rollback_detected_at",
        "rollback_decided_at",
        "rollback_started_at",
        "rollback_notified_at",
        "rollback_user",
        "rollback_hosts",
        "rollback_serial",
        "rollback_break_lock",
        "rollback_confirm",
    }
)
PLAYBOOK_INPUTS = {"decide.yml": frozenset({"severity", "impact", "time_to_fix"})}

SPEC_TYPES = {"int": "integer", "float": "float"}
_ROLE_REF = re.compile(r"^sre\.rollback\.(\w+)$")
"""A role or playbook of the collection by its FQCN."""


class AwxDefinitionError(Exception):
    """The definition file cannot be read (bad YAML, missing section)."""


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def load_source(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise AwxDefinitionError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise AwxDefinitionError(f"{path}: expected a mapping of AWX objects")
    return data


def role_options(role: str) -> dict[str, dict[str, Any]]:
    """Every option of every entry point of a collection role's argument spec."""
    path = COLLECTION / "roles" / role / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(path.read_text()).get("argument_specs", {}) if path.exists() else {}
    options: dict[str, dict[str, Any]] = {}
    for entry in specs.values():
        options.update(entry.get("options") or {})
    return options


def playbook_roles(playbook: Path, seen: set[Path] | None = None) -> set[str]:
    """The sre.rollback roles a playbook runs, through the playbooks it imports."""
    seen = set() if seen is None else seen
    if playbook in seen or not playbook.exists():
        return set()
    seen.add(playbook)
    roles: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("import_playbook", "ansible.builtin.import_playbook"):
                    match = _ROLE_REF.match(str(value))  # the collection's playbooks too
                    imported = (
                        COLLECTION / "playbooks" / f"{match.group(1)}.yml"
                        if match
                        else playbook.parent / str(value)
                    )
                    roles.update(playbook_roles(imported, seen))
                elif key in ("name", "role") and isinstance(value, str):
                    match = _ROLE_REF.match(value)
                    if match:
                        roles.add(match.group(1))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(playbook.read_text()))
    return roles


def accepted_inputs(project: Path, playbook: str) -> frozenset[str]:
    """Variables a playbook's roles declare, plus the run variables and its own inputs."""
    path = project / playbook
    names = set(RUN_VARIABLES) | PLAYBOOK_INPUTS.get(path.name, frozenset())
    for role in playbook_roles(path):
        names.update(role_options(role))
    return frozenset(names)


def _question(item: dict[str, Any]) -> dict[str, Any]:
    """A survey question in AWX's shape; choices named ``policy_severities`` are the policy's."""
    question = {"description": "", "min": None, "max": None, "default": "", **item}
    if question.get("choices") == "policy_severities":
        question["choices"] = list(SEVERITIES)
    return question


def target_question(
    target: levels.TargetInput, spec: dict[str, Any], required: bool
) -> dict[str, Any]:
    """A level's target input as a survey question, typed as its role's spec types it."""
    question: dict[str, Any] = {
        "variable": target.var,
        "question_name": f"Target: {target.what}",
        "question_description": f"{target.left_out}.",
        "required": required,
        "type": SPEC_TYPES.get(str(spec.get("type", "str")), "text"),
    }
    if spec.get("choices"):
        question["type"] = "multiplechoice"
        question["choices"] = [str(choice) for choice in spec["choices"]]
    return _question(question)


def build(source: dict[str, Any], project: Path) -> dict[str, Any]:
    """The objects: job templates (with surveys), the workflow's nodes, the rest as given."""
    common = source.get("level_templates")
    if not isinstance(common, dict):
        raise AwxDefinitionError("level_templates: missing")
    templates: list[dict[str, Any]] = []
    for number, known in sorted(levels.LEVELS.items()):
        playbook = f"playbooks/{known.playbook}"
        options: dict[str, dict[str, Any]] = {}
        for role in sorted(playbook_roles(project / playbook)):
            options.update(role_options(role))
        required = known.required.var if known.required else None
        survey = [
            target_question(t, options.get(t.var, {}), t.var == required) for t in known.targets
        ] + [_question(item) for item in common.get("survey", [])]
        templates.append(
            {
                "name": str(common["name"]).format(number=number, name=known.name),
                "level": number,
                "playbook": playbook,
                "built": known.built,
                "credentials": [
                    *common.get("credentials", []),
                    *common.get("extra_credentials", {}).get(number, []),
                ],
                "job_slice_count": common.get("job_slice_count", 1),
                "survey_spec": {"name": "", "description": "", "spec": survey},
            }
        )
    for item in source.get("templates", []):
        survey = [_question(q) for q in item.get("survey", [])]
        template = {k: v for k, v in item.items() if k != "survey"}
        template["survey_spec"] = {"name": "", "description": "", "spec": survey} if survey else {}
        templates.append(template)
    return {**source, "job_templates": templates, "workflow_nodes": workflow_nodes(source)}


def workflow_nodes(source: dict[str, Any]) -> list[dict[str, Any]]:
    """decide -> level N -> validate; a failed level or validation goes on to the next level,
    through an approval node where the workflow asks for one."""
    flow = source.get("workflow") or {}
    common = source.get("level_templates") or {}
    name = str(common.get("name", "{number}"))
    nodes: list[dict[str, Any]] = []

    def node(identifier: str, **fields: Any) -> dict[str, Any]:
        made = {"identifier": identifier, "success_nodes": [], "failure_nodes": [], **fields}
        nodes.append(made)
        return made

    decide = node("decide", unified_job_template="sre.rollback decide")
    previous: list[dict[str, Any]] = []
    for number in flow.get("levels", []):
        known = levels.LEVELS[number]
        entry = f"level-{number}"
        if number in flow.get("approval_before", []):
            entry = f"approve-level-{number}"
            node(
                entry,
                approval={
                    "name": f"Approve level {number} ({known.name})",
                    "timeout": flow.get("approval_timeout", 0),
                },
                success_nodes=[f"level-{number}"],
            )
        if not previous:
            decide["success_nodes"].append(entry)
        for parent in previous:
            parent["failure_nodes"].append(entry)
        run = node(
            f"level-{number}",
            unified_job_template=name.format(number=number, name=known.name),
            success_nodes=[f"validate-level-{number}"],
        )
        check = node(f"validate-level-{number}", unified_job_template="sre.rollback validate")
        previous = [run, check]
    return nodes


def survey_problems(where: str, spec: dict[str, Any]) -> list[Problem]:
    """A survey spec by AWX's rules, as its API applies them when a survey is created
    (``POST .../survey_spec/``, which awxkit's import of ``awx export`` posts too):
    awx/api/views/__init__.py ``JobTemplateSurveySpec._validate_spec_data``. AWX stops at
    the first problem; every problem is listed here. Then what AWX accepts but cannot work,
    each saying so: a default AWX drops at launch, bounds or choices no answer can meet, a
    password default (a secret in the definition). AWX has no rule on a variable's name;
    that it is an input of the playbook is checked by ``validate``."""
    if not spec:
        return []
    problems: list[Problem] = []
    for key, kind, label in (("name", str, "string"), ("description", str, "string")):
        if key not in spec:
            problems.append(Problem(where, f"survey spec: field {key!r} is missing"))
        elif not isinstance(spec[key], kind):
            problems.append(Problem(where, f"survey spec: {key!r} must be a {label}"))
    questions: Any = spec.get("spec")
    if not isinstance(questions, list):
        problems.append(Problem(where, "survey spec: 'spec' must be a list of questions"))
    elif not questions:
        problems.append(Problem(where, "survey spec: 'spec' has no questions"))
    if problems:
        return problems  # AWX refuses the spec before it looks at a question
    seen: set[str] = set()
    for index, question in enumerate(questions):
        if not isinstance(question, dict):
            problems.append(Problem(f"{where} survey question {index}", "is not a JSON object"))
            continue
        at = f"{where} survey question {index} ({question.get('variable', '?')})"
        problems.extend(Problem(at, what) for what in question_problems(question, seen))
    return problems


def question_problems(question: dict[str, Any], seen: set[str]) -> list[str]:
    """One question by ``_validate_spec_data``'s rules, in its order; ``seen``: the
    variables of the questions before it."""
    shape = []
    for key, kind, label in (
        ("type", str, "a string"),
        ("question_name", str, "a string"),
        ("variable", str, "a string"),
        ("required", bool, "true or false"),
    ):
        if key not in question:
            shape.append(f"{key!r} missing")
        elif not isinstance(question[key], kind):
            shape.append(f"{key!r} must be {label}")
    if shape:
        return shape
    if question["variable"] in seen:
        return [f"variable {question['variable']!r} duplicated"]
    seen.add(question["variable"])
    kind = question["type"]
    if kind not in SURVEY_TYPES:
        return [f"type {kind!r} is not one of AWX's: {', '.join(SURVEY_TYPES)}"]
    problems = []
    default = question.get("default", "")
    if default != "" and not isinstance(default, SURVEY_TYPES[kind]):
        label = kind if kind in ("integer", "float") else "string"
        problems.append(f"default {default!r} must be a {label}")
    for bound in ("min", "max"):
        value = question.get(bound)
        if value is not None and not isinstance(value, int):
            problems.append(f"{bound!r} must be an integer")
    if kind in CHOICE_TYPES:
        problems.extend(_choice_problems(question))
    if isinstance(default, str) and default.startswith(ENCRYPTED):
        problems.append(
            f"a default of {ENCRYPTED} is reserved for password questions"
            if kind != "password"
            else f"a default of {ENCRYPTED} keeps an encrypted default that a new survey lacks"
        )
    if problems:
        return problems
    return _unworkable(question)


def _choice_problems(question: dict[str, Any]) -> list[str]:
    """Choices and defaults of (multi)select questions: choices as a list or as one string
    of lines (blank lines dropped), defaults as lines of one string."""
    if "choices" not in question:
        return [f"a {question['type']} question must specify choices"]
    choices = choice_list(question["choices"])
    if choices is None:  # AWX fails with a server error on anything else
        return ["choices must be a list or a newline-separated string"]
    default = question.get("default")
    if not isinstance(default, str):
        return []  # a default of another type is refused above
    defaults = [line for line in default.splitlines() if line.strip()]
    problems = []
    if question["type"] == "multiplechoice" and len(defaults) > 1:
        problems.append("a multiplechoice question can have only one default")
    # AWX tests a default against the choices as given, so against a choices string any
    # substring passes; it then drops such a default at launch (_unworkable).
    if any(item not in choices for item in defaults):
        problems.append(f"default {default!r} is not among the choices")
    return problems


def choice_list(choices: Any) -> list[str] | None:
    """The choices as AWX reads them at launch: a list as it is, a string's non-blank lines."""
    if isinstance(choices, str):
        return [line for line in choices.splitlines() if line.strip()]
    if isinstance(choices, list):
        return choices
    return None


def _unworkable(question: dict[str, Any]) -> list[str]:
    """What AWX accepts in a spec but cannot work: checked by us, not by AWX."""
    problems = []
    kind, default = question["type"], question.get("default")
    if kind == "password" and default not in (None, ""):
        problems.append("a password question's default would put a secret in the definition")
    elif default not in (None, ""):
        # SurveyJobTemplateMixin._update_unified_job_kwargs (awx/main/models/mixins.py)
        # checks a default like an answer and silently leaves out one that fails.
        problems.extend(
            f"default {default!r} fails the question's own rules, so AWX leaves it out at "
            f"launch: {problem}"
            for problem in answer_problems(question, {question["variable"]: default})
        )
    low, high = question.get("min"), question.get("max")
    bounded = kind in (*TEXT_TYPES, "integer", "float")
    if bounded and isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(f"min {low} is above max {high}: no answer can pass")
    if kind in CHOICE_TYPES and not choice_list(question["choices"]):
        problems.append("choices are empty: no answer can pass")
    return problems


def answer_problems(question: dict[str, Any], answers: dict[str, Any]) -> list[str]:
    """AWX's check of one question's answer at launch (and of its default):
    ``SurveyJobTemplateMixin._survey_element_validation`` (awx/main/models/mixins.py).
    Answers are typed: text is a string, an integer an int (not a bool), a float an int or
    a float, a multiselect a list; text bounds are lengths."""
    variable, kind = question["variable"], question["type"]
    value: Any = answers.get(variable)
    if kind == "password" and value == ENCRYPTED:
        missing = question.get("default") is None and question["required"]
        return [f"{variable!r} value missing"] if missing else []
    if variable not in answers:
        return [f"{variable!r} value missing"] if question["required"] else []
    low, high = (question.get(b) for b in ("min", "max"))
    low = None if low in ("", None) else low
    high = None if high in ("", None) else high
    if kind in TEXT_TYPES:
        if not isinstance(value, str):
            return [f"value {value!r} for {variable!r} must be a string"]
        if low is not None and len(value) < int(low):
            return [f"{variable!r} is shorter than {low}"]
        if high is not None and len(value) > int(high):
            return [f"{variable!r} is longer than {high}"]
    elif kind in ("integer", "float"):
        if type(value) not in ((int,) if kind == "integer" else (int, float)):
            wanted = "an integer" if kind == "integer" else "a number"
            return [f"value {value!r} for {variable!r} must be {wanted}"]
        if low is not None and value < (int(low) if kind == "integer" else float(low)):
            return [f"{variable!r} value {value} is below {low}"]
        if high is not None and value > (int(high) if kind == "integer" else float(high)):
            return [f"{variable!r} value {value} is above {high}"]
    elif kind == "multiselect":
        if type(value) is not list:
            return [f"{variable!r} value must be a list"]
        choices = choice_list(question.get("choices")) or []
        return [
            f"{item!r} for {variable!r} is not one of {choices}"
            for item in value
            if item not in choices
        ]
    elif kind == "multiplechoice":
        choices = choice_list(question.get("choices")) or []
        if value not in choices:
            return [f"{value!r} for {variable!r} is not one of {choices}"]
    return []


def graph_problems(model: dict[str, Any]) -> list[Problem]:
    """Unique identifiers, links that resolve, no cycle, templates that exist, an approval
    before the levels that ask for one."""
    where = f"workflow {(model.get('workflow') or {}).get('name', '?')}"
    nodes = model.get("workflow_nodes", [])
    names = {t["name"] for t in model.get("job_templates", [])}
    problems: list[Problem] = []
    ids = [n["identifier"] for n in nodes]
    for identifier in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(Problem(f"{where} node {identifier}", "identifier is not unique"))
    by_id = {n["identifier"]: n for n in nodes}
    for n in nodes:
        at = f"{where} node {n['identifier']}"
        template = n.get("unified_job_template")
        if template is None and "approval" not in n:
            problems.append(Problem(at, "has neither a template nor an approval"))
        elif template is not None and template not in names:
            problems.append(Problem(at, f"template {template!r} does not exist"))
        for kind in ("success_nodes", "failure_nodes"):
            for target in n.get(kind, []):
                if target not in by_id:
                    problems.append(Problem(at, f"{kind} link to a missing node {target!r}"))
    problems.extend(_cycles(where, by_id))
    templates = {t.get("level"): t["name"] for t in model.get("job_templates", [])}
    # The levels that restore data wait for a person, whatever the definition asks for.
    for number in DATA_RESTORING_LEVELS:
        run_id = next(
            (
                n["identifier"]
                for n in nodes
                if n.get("unified_job_template") == templates.get(number)
            ),
            None,
        )
        if run_id is None:
            problems.append(Problem(where, f"no node runs level {number}"))
            continue
        parents = [
            n for n in nodes if run_id in n.get("success_nodes", []) + n.get("failure_nodes", [])
        ]
        if not parents or any("approval" not in p for p in parents):
            problems.append(
                Problem(
                    f"{where} node {run_id}", f"level {number} is reached without an approval node"
                )
            )
    return problems


def _cycles(where: str, by_id: dict[str, dict[str, Any]]) -> list[Problem]:
    state: dict[str, int] = {}
    problems: list[Problem] = []

    def visit(identifier: str, path: list[str]) -> None:
        state[identifier] = 1
        node = by_id[identifier]
        for target in node.get("success_nodes", []) + node.get("failure_nodes", []):
            if target not in by_id:
                continue
            if state.get(target) == 1:
                cycle = " -> ".join([*path[path.index(target) :], target])
                problems.append(Problem(f"{where} node {target}", f"cycle: {cycle}"))
            elif target not in state:
                visit(target, [*path, target])
        state[identifier] = 2

    for identifier in by_id:
        if identifier not in state:
            visit(identifier, [identifier])
    return problems


def validate(model: dict[str, Any], project: Path) -> list[Problem]:
    """Every problem of the model, each naming its object."""
    problems: list[Problem] = []
    for template in model.get("job_templates", []):
        where = f"job template {template['name']!r}"
        problems.extend(survey_problems(where, template.get("survey_spec") or {}))
        if not template.get("built", True):
            continue
        if not (project / template["playbook"]).exists():
            problems.append(Problem(where, f"playbook {template['playbook']} does not exist"))
            continue
        accepted = accepted_inputs(project, template["playbook"])
        for question in (template.get("survey_spec") or {}).get("spec", []):
            if question.get("variable") not in accepted:
                problems.append(
                    Problem(
                        where,
                        f"survey variable {question.get('variable')!r} is not an input of "
                        f"{template['playbook']} (its roles' argument specs or the run variables)",
                    )
                )
    problems.extend(graph_problems(model))
    return problems


def _key(type_: str, name: str, organization: str | None = None, **more: Any) -> dict[str, Any]:
    key: dict[str, Any] = {"type": type_, "name": name, **more}
    if organization is not None:
        key["organization"] = {"type": "organization", "name": organization}
    return key


def export(model: dict[str, Any]) -> dict[str, Any]:
    """The model in awxkit's ``awx export`` / ``awx import`` JSON format: one list per
    resource, each asset's fields, its ``natural_key``, foreign keys as natural keys, and
    ``related`` (credentials, survey_spec, notification templates, workflow_nodes).
    Credentials carry no inputs: secrets are given to AWX, never written here."""
    org = str(model["organization"])
    types = {t["name"]: t for t in model.get("credential_types", [])}
    notification = model["notification"]
    notify = _key("notification_template", notification["name"], org)
    on = {f"notification_templates_{state}": [notify] for state in ("started", "success", "error")}

    def credential_key(name: str) -> dict[str, Any]:
        kind = next(c["type"] for c in model.get("credentials", []) if c["name"] == name)
        type_kind = types[kind]["kind"] if kind in types else "ssh"
        return _key(
            "credential", name, org, credential_type=_key("credential_type", kind, kind=type_kind)
        )

    project = model["project"]
    inventory = model["inventory"]
    job_templates = []
    for t in model.get("job_templates", []):
        related: dict[str, Any] = {
            "credentials": [credential_key(c) for c in t.get("credentials", [])],
            **on,
        }
        if t.get("survey_spec"):
            related["survey_spec"] = t["survey_spec"]
        job_templates.append(
            {
                "name": t["name"],
                "description": f"level {t['level']}" if t.get("level") else "",
                "job_type": "run",
                "playbook": t["playbook"],
                "job_slice_count": t.get("job_slice_count", 1),
                "survey_enabled": bool(t.get("survey_spec")),
                "ask_variables_on_launch": True,
                "project": _key("project", project["name"], org),
                "inventory": _key("inventory", inventory["name"], org),
                "natural_key": _key("job_template", t["name"], org),
                "related": related,
            }
        )
    flow = model["workflow"]
    flow_key = _key("workflow_job_template", flow["name"], org)

    def node_key(identifier: str) -> dict[str, Any]:
        return {
            "type": "workflow_job_template_node",
            "workflow_job_template": flow_key,
            "identifier": identifier,
        }

    nodes = []
    for n in model["workflow_nodes"]:
        related = {
            kind: [node_key(i) for i in n[kind]] for kind in ("success_nodes", "failure_nodes")
        }
        related["always_nodes"] = []
        node: dict[str, Any] = {
            "identifier": n["identifier"],
            "all_parents_must_converge": False,
            "natural_key": node_key(n["identifier"]),
            "unified_job_template": (
                _key("job_template", n["unified_job_template"], org)
                if n.get("unified_job_template")
                else None
            ),
            "related": related,
        }
        if "approval" in n:
            related["create_approval_template"] = {"description": "", **n["approval"]}
        nodes.append(node)
    survey = [
        t["survey_spec"] for t in model["job_templates"] if t["name"] in flow.get("survey_from", [])
    ]
    workflow = {
        "name": flow["name"],
        "description": "level N -> validate -> on failure level N+1; approval before 4 and 5",
        "survey_enabled": bool(survey),
        "ask_variables_on_launch": True,
        "natural_key": flow_key,
        "related": {
            "workflow_nodes": nodes,
            **on,
            "notification_templates_approvals": [notify],
            **({"survey_spec": survey[0]} if survey else {}),
        },
    }
    return {
        "organizations": [{"name": org, "natural_key": {"type": "organization", "name": org}}],
        "credential_types": [
            {
                "name": t["name"],
                "kind": t["kind"],
                "inputs": t["inputs"],
                "injectors": t["injectors"],
                "natural_key": _key("credential_type", t["name"], kind=t["kind"]),
            }
            for t in model.get("credential_types", [])
        ],
        "credentials": [
            {
                "name": c["name"],
                "organization": {"type": "organization", "name": org},
                "credential_type": credential_key(c["name"])["credential_type"],
                "inputs": {},
                "natural_key": credential_key(c["name"]),
            }
            for c in model.get("credentials", [])
        ],
        "notification_templates": [
            {
                "name": notification["name"],
                "notification_type": notification["notification_type"],
                "notification_configuration": {"url": "", "http_method": "POST", "headers": {}},
                "organization": {"type": "organization", "name": org},
                "natural_key": notify,
            }
        ],
        "projects": [
            {
                **{
                    k: project[k]
                    for k in ("name", "scm_type", "scm_url", "scm_branch", "scm_update_on_launch")
                },
                "organization": {"type": "organization", "name": org},
                "natural_key": _key("project", project["name"], org),
            }
        ],
        "inventory": [
            {
                "name": inventory["name"],
                "organization": {"type": "organization", "name": org},
                "natural_key": _key("inventory", inventory["name"], org),
                "related": {
                    "inventory_sources": [
                        {
                            "name": inventory["source"]["name"],
                            "source": "scm",
                            "source_path": inventory["source"]["source_path"],
                            "source_project": _key("project", project["name"], org),
                            "update_on_launch": inventory["source"].get("update_on_launch", True),
                            "overwrite": inventory["source"].get("overwrite", True),
                            "natural_key": {
                                "type": "inventory_source",
                                "name": inventory["source"]["name"],
                                "inventory": _key("inventory", inventory["name"], org),
                            },
                        }
                    ]
                },
            }
        ],
        "job_templates": job_templates,
        "workflow_job_templates": [workflow],
    }


# Reads the argument spec each awx.awx module hands AnsibleModule (its main() stops there),
# in a process of its own: AnsibleModule is patched there, never in rollbackctl's.
_SPEC_READER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
from ansible.module_utils import basic
class Captured(Exception):
    pass
def capture(self, argument_spec, **_):
    raise Captured(argument_spec)
basic.AnsibleModule.__init__ = capture
specs = {}
for name in sys.argv[2:]:
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    try:
        module.main()
    except Captured as spec:
        specs[name] = {k: {"required": bool(v.get("required"))} for k, v in spec.args[0].items()}
        for key, value in spec.args[0].items():
            for alias in value.get("aliases") or ():
                specs[name][alias] = specs[name][key]
print(json.dumps(specs))
"""


def module_argument_problems(playbook: Path, collections: Path) -> list[Problem]:
    """Every awx.awx task's options against its module's argument spec: unknown options and
    required options left out (ansible-lint's args rule gives up on templated values)."""
    plays = yaml.safe_load(playbook.read_text()) or []
    tasks = [
        (task.get("name", "?"), key.removeprefix("awx.awx."), task[key])
        for play in plays
        for task in play.get("tasks", [])
        for key in task
        if key.startswith("awx.awx.")
    ]
    names = sorted({module for _, module, _ in tasks})
    proc = subprocess.run(
        [sys.executable, "-c", _SPEC_READER, str(collections), *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return [Problem(str(playbook), f"cannot read awx.awx's modules: {proc.stderr[-500:]}")]
    specs = json.loads(proc.stdout)
    problems = []
    for task, module, args in tasks:
        spec = specs[module]
        where = f"{playbook.name} task {task!r} (awx.awx.{module})"
        for option in sorted(set(args) - set(spec)):
            problems.append(Problem(where, f"awx.awx.{module} has no option {option!r}"))
        for option in sorted(k for k, v in spec.items() if v["required"] and k not in args):
            problems.append(Problem(where, f"required option {option!r} is missing"))
    return problems
