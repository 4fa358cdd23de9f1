"""The default chart of accounts (企业会计准则 / Chinese Accounting Standards for
Business Enterprises), the item categories that map to it, and the virtual
locations every tenant has."""

# code, 中文名, English name, kind, normal side
DEFAULT_ACCOUNTS = [
    ("1001", "库存现金", "Cash on hand", "asset", "debit"),
    ("1002", "银行存款", "Bank deposits", "asset", "debit"),
    ("1122", "应收账款", "Accounts receivable", "asset", "debit"),
    ("1123", "预付账款", "Prepayments", "asset", "debit"),
    ("1221", "其他应收款", "Other receivables", "asset", "debit"),
    ("1403", "原材料", "Raw materials", "asset", "debit"),
    ("1405", "库存商品", "Finished goods", "asset", "debit"),
    ("1411", "周转材料", "Turnover materials", "asset", "debit"),
    ("1601", "固定资产", "Fixed assets", "asset", "debit"),
    ("1602", "累计折旧", "Accumulated depreciation", "asset", "credit"),
    ("1901", "待处理财产损溢", "Unsettled gains and losses on assets", "asset", "debit"),
    ("2001", "短期借款", "Short-term borrowings", "liability", "credit"),
    ("2202", "应付账款", "Accounts payable", "liability", "credit"),
    ("220201", "应付账款-暂估", "Goods received not invoiced", "liability", "credit"),
    ("2203", "预收账款", "Advances from customers", "liability", "credit"),
    ("2211", "应付职工薪酬", "Employee benefits payable", "liability", "credit"),
    ("2221", "应交税费", "Taxes payable (VAT)", "liability", "credit"),
    ("4001", "实收资本", "Paid-in capital", "equity", "credit"),
    ("4103", "本年利润", "Profit for the year", "equity", "credit"),
    ("4104", "利润分配", "Profit distribution", "equity", "credit"),
    ("5001", "生产成本", "Production cost (work in progress)", "cost", "debit"),
    ("5101", "制造费用", "Manufacturing overhead", "cost", "debit"),
    ("6001", "主营业务收入", "Revenue from main operations", "revenue", "credit"),
    ("6051", "其他业务收入", "Other operating revenue", "revenue", "credit"),
    ("6401", "主营业务成本", "Cost of sales", "expense", "debit"),
    ("6403", "税金及附加", "Taxes and surcharges", "expense", "debit"),
    ("6601", "销售费用", "Selling expenses", "expense", "debit"),
    ("6602", "管理费用", "Administrative expenses", "expense", "debit"),
    ("6603", "财务费用", "Financial expenses", "expense", "debit"),
    ("6711", "营业外支出", "Non-operating expenses", "expense", "debit"),
]

# code, name, stock account, cost-of-sales account, revenue account
DEFAULT_CATEGORIES = [
    ("RAW", "原材料 Raw materials", "1403", "6401", "6001"),
    ("SEMI", "自制半成品 Semi-finished goods", "1405", "6401", "6001"),
    ("FG", "库存商品 Finished goods", "1405", "6401", "6001"),
]

# code, name, kind
DEFAULT_LOCATIONS = [
    ("WH", "主仓库 Main warehouse", "warehouse"),
    ("SUPPLIER", "供应商 Suppliers (virtual)", "supplier"),
    ("CUSTOMER", "客户 Customers (virtual)", "customer"),
    ("PRODUCTION", "生产 Work in progress (virtual)", "production"),
    ("ADJUSTMENT", "盘点调整 Inventory adjustment (virtual)", "adjustment"),
    ("SCRAP", "报废 Scrap (virtual)", "scrap"),
    ("VARIANCE", "生产差异 Production variances (virtual)", "variance"),
]

STOCK_ACCOUNTS = sorted({c[2] for c in DEFAULT_CATEGORIES})
