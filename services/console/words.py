"""The console's words: Chinese first, English on a switch (`?lang=en`, kept in a cookie)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    "title": ("网格化管理工作台", "Grid management workbench"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "refused": ("用户名或密码错误", "Wrong username or password"),
    "throttled": ("登录失败次数过多，请稍后再试", "Too many failed sign-ins; try again later"),
    "queue.new": ("待签收", "To acknowledge"),
    "queue.working": ("处理中", "In progress"),
    "queue.parked": ("挂账", "Parked"),
    "queue.done": ("已办", "Done"),
    "light.green": ("未超时", "On time"),
    "light.yellow": ("将超时", "Due soon"),
    "light.red": ("已超时", "Overdue"),
    "case": ("案件", "Case"),
    "class": ("类别", "Class"),
    "state": ("状态", "State"),
    "deadline": ("处置时限", "Deadline"),
    "grid": ("网格", "Grid"),
    "address": ("地址", "Address"),
    "description": ("描述", "Description"),
    "timeline": ("流转记录", "Timeline"),
    "when": ("时间", "When"),
    "who": ("操作人", "Who"),
    "what": ("环节", "What"),
    "why": ("说明", "Note"),
    "photos": ("照片", "Photos"),
    "none": ("暂无", "None"),
    "acknowledge": ("签收", "Acknowledge"),
    "handled": ("处理完毕", "Mark handled"),
    "return": ("回退", "Return"),
    "note": ("处理说明", "Note"),
    "reason": ("回退理由", "Reason"),
    "done": ("已提交", "Done"),
    "queue": ("我的待办", "My queue"),
    "back": ("返回", "Back"),
    "no_cases": ("没有案件", "No cases"),
    "language": ("English", "中文"),
    "unavailable": ("服务暂不可用，请重试", "The service is unavailable; try again"),
    "forbidden": ("无权进行此操作", "Not yours to do"),
    "department": ("处置部门", "Department"),
    "handled.note": ("处理说明", "Note"),
    "return.reason": ("回退理由", "Reason"),
    "dispatch": ("派遣", "Dispatch"),
    "dispatch.department": ("派往部门", "To department"),
    "dispatch.reason": ("派遣说明", "Reason"),
    "approve": ("同意", "Approve"),
    "deny": ("不同意", "Deny"),
    "approve.reason": ("审批意见（可选）", "Comment (optional)"),
    "deny.reason": ("不同意理由", "Reason"),
    "request.extension": ("延期申请", "Extension requested"),
    "request.parking": ("挂账申请", "Parking requested"),
    "centre": ("指挥中心", "Command centre"),
    "intake": ("受理台", "Intake desk"),
    "intake.verifying": ("待核实", "Awaiting verification"),
    "intake.filing": ("待立案", "Awaiting filing"),
    "channel": ("来源", "Channel"),
    "reported": ("上报时间", "Reported"),
    "verification_due": ("核实时限", "Verify by"),
    "file": ("立案", "File"),
    "file.note": ("立案意见（可选）", "Note (optional)"),
    "void": ("作废", "Void"),
    "void.reason": ("作废理由", "Reason"),
    "centre.returned": ("待派遣（回退、返工）", "To dispatch (returned, rework)"),
    "centre.requests": ("待审批", "Requests to answer"),
    "centre.overdue": ("已超时", "Overdue"),
}


def words(lang: Lang) -> dict[str, str]:
    index = LANGS.index(lang)
    return {key: pair[index] for key, pair in WORDS.items()}
